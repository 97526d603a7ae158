//! Builds the handler components (`../handlers`, a wasm32-wasip2 workspace)
//! with a nested cargo, precompiles each embedded family for the target's
//! baseline ISA with the agent's own engine configuration
//! (`qga_engine::config`, here with Cranelift) and embeds the artifacts:
//! `$OUT_DIR/embedded.rs` lists ``EmbeddedFamily { family, sha256, artifact:
//! include_bytes!(<family>.cwasm), wasm }``, the `.wasm` only in a build with the `compiler` feature (its
//! fallback when an artifact does not load), and `$OUT_DIR/manifests.rs`
//! each family's grant manifest (`handlers/<family>/grants.toml`). Test fixtures are built too but
//! only exposed to tests, as `QGA_TEST_FIXTURES` (a directory of
//! `<family>.wasm` and `<family>.cwasm`, pinned by the policy lines in
//! `QGA_TEST_FIXTURE_PINS`).
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use qga_engine::artifact;

/// Families embedded in the agent: handlers/<family>, crate <family>.
const FAMILIES: &[&str] = &[
    "system-info",
    "storage",
    "file",
    "exec",
    "network",
    "hardware",
    "power",
    "time",
    "accounts",
];
/// Test-only families, never embedded.
const FIXTURES: &[&str] = &["fixture", "fixture-socket"];
/// Test-only second builds of a family (crate, family), exposed to tests as
/// `QGA_TEST_<CRATE>` (the path of the component) for hot-swap tests.
const FIXTURE_VARIANTS: &[(&str, &str)] = &[
    ("fixture-v2", "fixture"),
    ("fixture-hostile", "file"),
    ("fixture-file-grants", "file"),
    ("fixture-sysfs-escape", "storage"),
];
const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("host/ has a parent").to_path_buf();
    let handlers = root.join("handlers");
    let wit = root.join("wit");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));

    println!("cargo:rerun-if-changed=build.rs");
    // The handlers also build the shared crates.
    let crates = root.join("crates");
    for input in inputs(&handlers).into_iter().chain(inputs(&wit)).chain(inputs(&crates)) {
        println!("cargo:rerun-if-changed={}", input.display());
    }

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    ensure_target();

    let target_dir = handlers.join("target");
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--release", "--locked", "--target", TARGET])
        .arg("--manifest-path")
        .arg(handlers.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .stdout(Stdio::from(std::io::stderr()));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key == "CARGO_ENCODED_RUSTFLAGS"
            || key == "RUSTFLAGS"
            || key == "CARGO_TARGET_DIR"
            || key == "RUSTC_WRAPPER"
            || key == "RUSTC_WORKSPACE_WRAPPER"
            || key.starts_with("CARGO_BUILD_")
            || key.starts_with("CARGO_PROFILE_")
        {
            cmd.env_remove(&*key);
        }
    }
    let status = cmd.status().expect("cannot run cargo for handlers/");
    assert!(status.success(), "building handlers/ for {TARGET} failed");

    let built = target_dir.join(TARGET).join("release");
    // The target the agent is built for (not the build machine's CPU).
    let native = std::env::var("TARGET").expect("TARGET");
    println!("cargo:rustc-env=QGA_TARGET={native}");
    let with_wasm = std::env::var_os("CARGO_FEATURE_COMPILER").is_some();
    let mut embedded = String::from("pub const EMBEDDED: &[EmbeddedFamily] = &[\n");
    for family in FAMILIES {
        let wasm = out.join(format!("{family}.wasm"));
        copy(&built.join(format!("{}.wasm", family.replace('-', "_"))), &wasm);
        let cwasm = precompile(&native, family, &wasm);
        let digest = hex_digest(&std::fs::read(&cwasm).expect("read the artifact just written"));
        let fallback = if with_wasm {
            format!("Some(include_bytes!({:?}))", wasm.display().to_string())
        } else {
            "None".to_owned()
        };
        embedded.push_str(&format!(
            "    EmbeddedFamily {{ family: {family:?}, sha256: {digest:?}, artifact: include_bytes!({:?}), wasm: {fallback} }},\n",
            cwasm.display().to_string()
        ));
    }
    embedded.push_str("];\n");
    std::fs::write(out.join("embedded.rs"), embedded).expect("write embedded.rs");
    // Each family's grant manifest, beside its handler: the only grants the
    // agent trusts (`policy::manifests`).
    let mut manifests = String::from("pub const MANIFESTS: &[(&str, &str)] = &[\n");
    for family in FAMILIES {
        let path = handlers.join(family).join("grants.toml");
        assert!(
            path.is_file(),
            "family {family} has no grant manifest {}",
            path.display()
        );
        manifests.push_str(&format!(
            "    ({family:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    manifests.push_str("];\n");
    std::fs::write(out.join("manifests.rs"), manifests).expect("write manifests.rs");

    let fixtures = out.join("fixtures");
    std::fs::create_dir_all(&fixtures).expect("create fixtures dir");
    // The fixtures' artifacts are trusted by the policy lines in
    // `pins.toml` (`QGA_TEST_FIXTURE_PINS`), for in-process runtime tests.
    let mut pins = String::new();
    for family in FIXTURES {
        let wasm = fixtures.join(format!("{family}.wasm"));
        copy(&built.join(format!("{}.wasm", family.replace('-', "_"))), &wasm);
        let cwasm = precompile(&native, family, &wasm);
        let digest = hex_digest(&std::fs::read(&cwasm).expect("read the artifact just written"));
        pins.push_str(&format!("[component.{family}]\nsha256 = \"{digest}\"\n"));
    }
    let pins_file = out.join("fixture-pins.toml");
    std::fs::write(&pins_file, pins).expect("write fixture-pins.toml");
    println!("cargo:rustc-env=QGA_TEST_FIXTURES={}", fixtures.display());
    println!("cargo:rustc-env=QGA_TEST_FIXTURE_PINS={}", pins_file.display());
    for (krate, family) in FIXTURE_VARIANTS {
        let dir = out.join("fixture-variants").join(krate);
        std::fs::create_dir_all(&dir).expect("create fixture variant dir");
        let dest = dir.join(format!("{family}.wasm"));
        copy(&built.join(format!("{}.wasm", krate.replace('-', "_"))), &dest);
        println!(
            "cargo:rustc-env=QGA_TEST_{}={}",
            krate.to_uppercase().replace('-', "_"),
            dest.display()
        );
    }
}

/// Compile `wasm` (family `family`) for `target` into a qga artifact beside
/// it (`<family>.cwasm`); returns its path.
fn precompile(target: &str, family: &str, wasm: &Path) -> PathBuf {
    let bytes = std::fs::read(wasm).unwrap_or_else(|e| panic!("cannot read {}: {e}", wasm.display()));
    let metadata = qga_engine::metadata::read(family, &bytes).unwrap_or_else(|e| panic!("family {family}: {e}"));
    let compiled = qga_engine::precompile(target, &bytes)
        .unwrap_or_else(|e| panic!("cannot precompile family {family} for {target}: {e:#}"));
    let artifact = artifact::encode(&metadata, &compiled).unwrap_or_else(|e| panic!("family {family}: {e}"));
    let dest = wasm.with_extension("cwasm");
    std::fs::write(&dest, artifact).unwrap_or_else(|e| panic!("cannot write {}: {e}", dest.display()));
    dest
}

fn hex_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        panic!("cannot copy {} to {}: {e}", from.display(), to.display());
    }
}

/// Every file under `dir` except build output, so cargo reruns this script
/// when (and only when) one of them changes. Only existing paths are listed.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            out.extend(inputs(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Install the wasm32-wasip2 target through rustup when it is missing.
fn ensure_target() {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    let Ok(installed) = installed else {
        // No rustup: the toolchain is managed otherwise; cargo will say if
        // the target is missing.
        return;
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return;
    }
    println!("cargo:warning=the {TARGET} target is missing: running `rustup target add {TARGET}`");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .expect("cannot run rustup");
    assert!(status.success(), "`rustup target add {TARGET}` failed");
}
