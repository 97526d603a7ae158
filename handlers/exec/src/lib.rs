//! The `exec` family: guest-exec, guest-exec-status.
//!
//! The child table lives in the host (`qga:agent/process`): children are
//! spawned, fed, captured and reaped there, so they outlive this component
//! (and a swap of it). This component shapes arguments and answers as
//! qemu-ga 7.2 does, with qemu-ga 10.0's capture-output modes.

pub mod logic;

// The bindings wit-bindgen generates are `unsafe` glue (exports, the
// canonical ABI); the code written here is safe Rust.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        world: "exec-family",
        path: "../../wit",
    });

    use super::logic;
    use exports::qga::agent::exec::{
        ExecStarted, ExecStatus, Guest, GuestExecCaptureOutput, GuestExecCaptureOutputMode,
    };
    use qga::agent::process::{self, CaptureMode, SpawnRequest};
    use qga::agent::types::QgaError;

    struct Exec;

    fn err(desc: String) -> QgaError {
        QgaError { desc }
    }

    /// qemu-ga 10.0: `true` is `separated`, `false` (or nothing) `none`.
    fn capture_mode(capture: Option<GuestExecCaptureOutput>) -> CaptureMode {
        match capture {
            None | Some(GuestExecCaptureOutput::Flag(false)) => CaptureMode::None,
            Some(GuestExecCaptureOutput::Flag(true)) => CaptureMode::Separated,
            Some(GuestExecCaptureOutput::Mode(mode)) => match mode {
                GuestExecCaptureOutputMode::None => CaptureMode::None,
                GuestExecCaptureOutputMode::Stdout => CaptureMode::Stdout,
                GuestExecCaptureOutputMode::Stderr => CaptureMode::Stderr,
                GuestExecCaptureOutputMode::Separated => CaptureMode::Separated,
                GuestExecCaptureOutputMode::Merged => CaptureMode::Merged,
            },
        }
    }

    impl Guest for Exec {
        fn guest_exec_status(pid: i64) -> Result<ExecStatus, QgaError> {
            let s = process::status(pid).ok_or_else(|| err(logic::INVALID_PID.to_owned()))?;
            // qemu-ga reports a truncation flag only beside its data.
            let out_truncated = s.out_b64.as_ref().map(|_| s.out_truncated);
            let err_truncated = s.err_b64.as_ref().map(|_| s.err_truncated);
            Ok(ExecStatus {
                exited: s.exited,
                exitcode: s.exitcode,
                signal: s.signal,
                out_data: s.out_b64,
                err_data: s.err_b64,
                out_truncated,
                err_truncated,
            })
        }

        fn guest_exec(
            path: String,
            arg: Option<Vec<String>>,
            env: Option<Vec<String>>,
            input_data: Option<String>,
            capture_output: Option<GuestExecCaptureOutput>,
        ) -> Result<ExecStarted, QgaError> {
            let input = match input_data {
                Some(text) => Some(logic::decode_base64(&text).map_err(err)?),
                None => None,
            };
            let req = SpawnRequest {
                path,
                args: arg.unwrap_or_default(),
                env,
                input,
                capture: capture_mode(capture_output),
            };
            let pid = process::spawn(&req).map_err(|m| err(logic::command_failed(&m)))?;
            Ok(ExecStarted { pid })
        }
    }

    export!(Exec);
}
