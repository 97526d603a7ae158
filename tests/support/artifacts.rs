//! Precompiled handler artifacts for tests. The agent under test runs only
//! precompiled code (its `compiler` feature is off), so a test compiles a
//! fixture's `.wasm` here — with the dev-dependency `qga-engine` and its
//! Cranelift, the engine configuration the agent itself uses — into the
//! `.cwasm` the agent loads, and pins its sha256 in the policy.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use sha2::Digest as _;

/// What one compile made: family, component, artifact.
type Compiled = (String, Vec<u8>, Vec<u8>);

/// The qga artifact of family `family`'s component `wasm` (compiled once
/// per test process).
pub fn compile(family: &str, wasm: &[u8]) -> Vec<u8> {
    static DONE: Mutex<Vec<Compiled>> = Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, _, artifact)) = done.iter().find(|(f, w, _)| f == family && w == wasm) {
        return artifact.clone();
    }
    let metadata = qga_engine::metadata::read(family, wasm).unwrap_or_else(|e| panic!("{family}: {e}"));
    let compiled = qga_engine::precompile(&target(), wasm).expect("fixture compiles");
    let artifact = qga_engine::artifact::encode(&metadata, &compiled).unwrap();
    done.push((family.to_owned(), wasm.to_vec(), artifact.clone()));
    artifact
}

/// The target the agent under test was built for: the host package's build
/// script says it; other packages' tests run on the machine they were
/// built for.
fn target() -> String {
    option_env!("QGA_TARGET")
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{}-unknown-linux-gnu", std::env::consts::ARCH))
}

pub fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Compile `wasm` and put it in `dir` as `<family>.cwasm`, atomically (a
/// watching agent never sees half a file); returns the artifact's sha256.
pub fn install(dir: &Path, family: &str, wasm: &[u8]) -> String {
    let artifact = compile(family, wasm);
    install_bytes(dir, family, &artifact);
    sha256(&artifact)
}

/// Put `bytes` in `dir` as `<family>.cwasm`, atomically.
pub fn install_bytes(dir: &Path, family: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{family}.cwasm.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{family}.cwasm"))).unwrap();
}

/// The policy lines that trust an artifact.
pub fn pin(family: &str, digest: &str) -> String {
    format!("[component.{family}]\nsha256 = \"{digest}\"\n")
}

/// Pins for several families at once, as one policy text.
pub fn pins(digests: &HashMap<String, String>) -> String {
    let mut families: Vec<_> = digests.iter().collect();
    families.sort();
    families.into_iter().map(|(f, d)| pin(f, d)).collect()
}
