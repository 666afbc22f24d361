//! Generates the Python, Kotlin and Swift bindings from the library this test
//! run built, runs the Python suite (`tests/python/`) against a real
//! `lianxin` server, and compiles the Kotlin and Swift sources where a
//! toolchain exists on the machine.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>`: the test binary lives in its `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

fn library() -> PathBuf {
    let name = format!(
        "{}lianxin_mobile{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    // A test build leaves the cdylib beside the test binary in `deps/`; a
    // plain build copies it up to the profile directory.
    let candidates = [profile_dir().join("deps").join(&name), profile_dir().join(&name)];
    candidates
        .iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} was not built in {}", profile_dir().display()))
        .clone()
}

fn found(tool: &str) -> bool {
    Command::new(tool).arg("-version").output().is_ok() || Command::new(tool).arg("--version").output().is_ok()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// The `lianxin` server binary: `LIANXIN_BIN`, or the one built beside this
/// test (a workspace test run builds it), or built now.
fn server_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("LIANXIN_BIN") {
        return PathBuf::from(bin);
    }
    let bin = profile_dir().join(format!("lianxin{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        run(Command::new(env!("CARGO"))
            .args(["build", "-p", "lianxin", "--bin", "lianxin"])
            .current_dir(env!("CARGO_MANIFEST_DIR")));
    }
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

fn generate(lib: &Path, language: &str, out: &Path) {
    run(Command::new(env!("CARGO_BIN_EXE_uniffi-bindgen"))
        .args(["generate", "--no-format", "--library"])
        .arg(lib)
        .args(["--language", language, "--out-dir"])
        .arg(out)
        .current_dir(env!("CARGO_MANIFEST_DIR")));
}

#[test]
fn bindings_are_generated_and_the_python_suite_passes_against_a_real_server() {
    let lib = library();
    let out = tempfile::tempdir().unwrap();
    for language in ["python", "kotlin", "swift"] {
        generate(&lib, language, &out.path().join(language));
    }
    let python = out.path().join("python");
    assert!(python.join("lianxin_mobile.py").exists());
    std::fs::copy(&lib, python.join(lib.file_name().unwrap())).unwrap();
    let kotlin = out.path().join("kotlin/uniffi/lianxin_mobile/lianxin_mobile.kt");
    assert!(kotlin.exists(), "no Kotlin source at {}", kotlin.display());
    let swift = out.path().join("swift/lianxin_mobile.swift");
    assert!(swift.exists(), "no Swift source at {}", swift.display());

    if found("kotlinc") {
        // The generated Kotlin needs JNA and kotlinx-coroutines on the class path.
        match std::env::var("LIANXIN_KOTLIN_CLASSPATH") {
            Ok(cp) => {
                run(Command::new("kotlinc")
                    .arg(&kotlin)
                    .args(["-classpath", &cp, "-d"])
                    .arg(out.path().join("kotlin-classes")));
                println!("Kotlin sources compiled");
            }
            Err(_) => println!("skipped: kotlinc found but LIANXIN_KOTLIN_CLASSPATH (JNA, kotlinx-coroutines) not set"),
        }
    } else {
        println!("skipped: kotlinc not found; Kotlin sources generated, not compiled");
    }
    if found("swiftc") {
        let dir = out.path().join("swift");
        run(Command::new("swiftc")
            .current_dir(&dir)
            .args(["-typecheck", "lianxin_mobile.swift", "-Xcc"])
            .arg(format!(
                "-fmodule-map-file={}",
                dir.join("lianxin_mobileFFI.modulemap").display()
            ))
            .args(["-I", "."]));
        println!("Swift sources type-checked");
    } else {
        println!("skipped: swiftc not found; Swift sources generated, not compiled");
    }

    if !found("python3") {
        println!("skipped: python3 not found; the Python suite did not run");
        return;
    }
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let output = run(Command::new("python3")
        .args(["-m", "unittest", "discover", "-v", "-s"])
        .arg(&suite)
        .env("LIANXIN_BIN", server_binary())
        .env("LIANXIN_BINDINGS_DIR", &python)
        .env("PYTHONDONTWRITEBYTECODE", "1"));
    println!("{output}");
}
