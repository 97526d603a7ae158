//! Run one component command through the runtime, outside the protocol:
//! `runtime_probe STATE_DIR COMMAND`. Prints the reply
//! value and the process's RSS after it. For measurements (binary size with
//! the runtime linked in, idle RSS) until the agent's main wires it up.

use qga::runtime::{Runtime, RuntimeConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let state = args.next().expect("STATE_DIR");
    let command = args.next().unwrap_or_else(|| "guest-get-host-name".into());
    let config = RuntimeConfig::new(state);
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
