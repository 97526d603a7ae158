//! The agent's async runtime (tokio, with the agent's features) works in a
//! main process that has dropped privilege, is confined by Landlock and runs
//! under the seccomp allowlist: worker threads, timers, unix sockets, signal
//! handlers, the blocking pool and the broker channel.

mod support;

use std::os::fd::AsFd;

use qga_privsep::channel;
use qga_privsep::landlock::{self, Access, Rule};
use qga_privsep::privilege;
use qga_privsep::seccomp;
use qga_privsep::status::ProcessStatus;
use qga_privsep::wire::{Reply, Request};
use support::{ensure, in_child};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn the_agent_runtime_runs_under_the_sandbox() {
    let state = support::temp_dir("runtime-state");
    in_child(|| {
        let (main, broker) = channel::pair().map_err(|e| e.to_string())?;
        let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
        let user = privilege::resolve_agent_user().map_err(|e| e.to_string())?;
        privilege::drop_all(&user).map_err(|e| e.to_string())?;
        let rules = [
            Rule {
                path: state.to_path_buf(),
                access: Access::ReadWrite,
            },
            Rule {
                path: "/proc".into(),
                access: Access::ReadOnly,
            },
        ];
        landlock::restrict(&rules).map_err(|e| e.to_string())?;
        seccomp::install().map_err(|e| e.to_string())?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        runtime.block_on(async {
            let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .map_err(|e| format!("SIGHUP handler: {e}"))?;
            let (mut a, mut b) = tokio::net::UnixStream::pair().map_err(|e| e.to_string())?;
            let echo = tokio::spawn(async move {
                let mut buf = [0u8; 5];
                b.read_exact(&mut buf).await.unwrap();
                b.write_all(&buf).await.unwrap();
            });
            a.write_all(b"hello").await.map_err(|e| e.to_string())?;
            let mut back = [0u8; 5];
            a.read_exact(&mut back).await.map_err(|e| e.to_string())?;
            ensure(&back == b"hello", || format!("{back:?}"))?;
            echo.await.map_err(|e| e.to_string())?;
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            ensure(
                tokio::time::timeout(std::time::Duration::from_millis(1), hangup.recv())
                    .await
                    .is_err(),
                || "no SIGHUP was sent".into(),
            )?;
            // The broker channel from the blocking pool, as the agent will use it.
            let reply = tokio::task::spawn_blocking(move || {
                main.send(&Request::ReopenChannel, &[])?;
                main.recv()
            });
            let request = broker.recv().map_err(|e| e.to_string())?;
            ensure(request.message == Request::ReopenChannel, || format!("{request:?}"))?;
            broker
                .send(&Reply::Opened, &[null.as_fd()])
                .map_err(|e| e.to_string())?;
            let reply = reply.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
            ensure(reply.message == Reply::Opened && reply.fds.len() == 1, || {
                format!("{reply:?}")
            })?;
            let state_file = state.join("qga.state");
            tokio::task::spawn_blocking(move || std::fs::write(state_file, b"1000"))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("state: {e}"))?;
            Ok::<(), String>(())
        })?;
        let status = ProcessStatus::of_self().map_err(|e| e.to_string())?;
        ensure(status.seccomp == 2 && status.cap_effective == 0, || {
            format!("{status:?}")
        })?;
        ensure(status.threads >= 3, || {
            format!("the runtime's threads: {}", status.threads)
        })
    })
    .unwrap();
}
