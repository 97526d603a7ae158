//! Run one component command through the runtime, outside the protocol:
//! `runtime_probe STATE_DIR COMMAND`, or `runtime_probe compile OUT_DIR`
//! (what `qga compile` does; needs the `cranelift` feature); with
//! `QGA_PRECOMPILED=DIR` artifacts are looked up there. Prints the reply
//! value and the process's RSS after it. For measurements (binary size with
//! the runtime linked in, idle RSS) until the agent's main wires it up.

use qga::runtime::{Runtime, RuntimeConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let state = args.next().expect("STATE_DIR");
    let command = args.next().unwrap_or_else(|| "guest-get-host-name".into());
    if state == "compile" {
        #[cfg(feature = "cranelift")]
        for path in
            qga::runtime::compile_families(&RuntimeConfig::new("/nonexistent"), command.as_ref()).expect("compile")
        {
            println!("{}", path.display());
        }
        return;
    }
    let mut config = RuntimeConfig::new(state);
    config.background_compile = false;
    config.precompiled_dir = std::env::var_os("QGA_PRECOMPILED").map(Into::into);
    let rt = Runtime::new(config).expect("runtime");
    match rt.call(&command, None) {
        Ok(Some(v)) => println!("{}", v.to_json()),
        Ok(None) => println!("(no reply)"),
        Err(e) => println!("error: {}", e.desc),
    }
    let rss = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or("VmRSS: ?")
        .to_owned();
    eprintln!("{rss}");
}
