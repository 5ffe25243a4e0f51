//! Compiles the eBPF programs in `bpf/` with clang when the `ebpf` feature is on. The object
//! is embedded in the binary (`ebpf.rs`), so nothing but the binary is deployed. Without clang
//! or the BPF headers the build goes on with a warning and an empty object: live capture then
//! fails at start saying what to install.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=bpf/podwire.bpf.c");
    println!("cargo:rerun-if-changed=bpf/podwire.h");
    println!("cargo:rerun-if-env-changed=CLANG");
    if std::env::var_os("CARGO_FEATURE_EBPF").is_none() {
        return;
    }
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("podwire.bpf.o");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let (target_arch, multiarch) = match arch.as_str() {
        "x86_64" => ("x86", "x86_64-linux-gnu"),
        "aarch64" => ("arm64", "aarch64-linux-gnu"),
        other => panic!(
            "podwire's eBPF capture is built for x86_64 and aarch64, not {other}; build without the `ebpf` feature"
        ),
    };
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let output = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror"])
        .arg(format!("-D__TARGET_ARCH_{target_arch}"))
        .arg(format!("-I/usr/include/{multiarch}"))
        .args(["-c", "bpf/podwire.bpf.c", "-o"])
        .arg(&out)
        .output();
    let problem = match output {
        Ok(o) if o.status.success() => {
            println!("cargo:rustc-env=PODWIRE_EBPF_BUILD=in");
            return;
        }
        Ok(o) => format!("clang failed ({}): {}", o.status, String::from_utf8_lossy(&o.stderr)),
        Err(e) => format!("cannot run `{clang}`: {e}"),
    };
    // Everything else still builds (the demo, pcap files, Kafka, queries); live capture then
    // says how to get it. The tests fail on it, loudly.
    for line in problem.lines().take(20) {
        println!("cargo:warning=eBPF programs not built: {line}");
    }
    println!(
        "cargo:warning=live capture (--interface) needs them: apt-get install clang libbpf-dev (or set CLANG), then rebuild"
    );
    // `podwire --version` says so too, after the warning has scrolled by.
    let first = problem.lines().next().unwrap_or("").replace(['\n', '\r'], " ");
    println!(
        "cargo:rustc-env=PODWIRE_EBPF_BUILD=not built ({}): apt-get install clang libbpf-dev, then rebuild",
        first.chars().take(120).collect::<String>()
    );
    // A path that never exists: cargo runs this script again on every build until clang works,
    // so installing clang later is enough (no stale empty object).
    println!("cargo:rerun-if-changed={}.retry", out.display());
    std::fs::write(&out, b"").expect("cannot write to OUT_DIR");
}
