//! Builds the handler components (`../handlers`, a wasm32-wasip2 workspace)
//! with a nested cargo and embeds them: `$OUT_DIR/embedded.rs` lists
//! `(family, include_bytes!(…))`. Test fixtures are built too but only
//! exposed to tests, as `QGA_TEST_FIXTURES` (a directory of `<family>.wasm`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    let mut embedded = String::from("pub const EMBEDDED: &[(&str, &[u8])] = &[\n");
    for family in FAMILIES {
        let dest = out.join(format!("{family}.wasm"));
        copy(&built.join(format!("{}.wasm", family.replace('-', "_"))), &dest);
        embedded.push_str(&format!(
            "    ({family:?}, include_bytes!({:?})),\n",
            dest.display().to_string()
        ));
    }
    embedded.push_str("];\n");
    std::fs::write(out.join("embedded.rs"), embedded).expect("write embedded.rs");

    let fixtures = out.join("fixtures");
    std::fs::create_dir_all(&fixtures).expect("create fixtures dir");
    for family in FIXTURES {
        copy(
            &built.join(format!("{}.wasm", family.replace('-', "_"))),
            &fixtures.join(format!("{family}.wasm")),
        );
    }
    println!("cargo:rustc-env=QGA_TEST_FIXTURES={}", fixtures.display());
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
