//! The `podwire` binary on bad input: a clear error naming the file and byte offset, what was
//! read before it still written, and a non-zero exit.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn podwire(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podwire")).args(args).output().unwrap()
}

fn shared(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/pcaps").join(name);
    assert!(
        p.exists(),
        "missing shared capture {}: the repo must sit beside `shared/`",
        p.display()
    );
    p
}

fn parquet_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                parquet_files(&p)
            } else {
                usize::from(p.extension().is_some_and(|x| x == "parquet"))
            }
        })
        .sum()
}

/// A classic pcap file header (little-endian, µs) with `linktype`.
fn pcap_header(linktype: u32) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&linktype.to_le_bytes());
    f
}

fn standalone(pcap: &Path, store: &Path) -> Output {
    podwire(&[
        "standalone",
        "-q",
        "--pcap",
        pcap.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ])
}

#[test]
fn truncated_capture_names_file_and_offset_and_keeps_what_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(shared("gnutella.pcap")).unwrap();
    // Cut in the middle of a record, past many complete ones.
    let cut = full.len() / 2 + 3;
    let pcap = dir.path().join("cut.pcap");
    std::fs::write(&pcap, &full[..cut]).unwrap();
    let store = dir.path().join("store");
    let out = standalone(&pcap, &store);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a truncated capture must fail: {err}");
    assert!(err.contains("cut.pcap") && err.contains("byte offset"), "{err}");
    assert!(err.contains("truncated"), "{err}");
    let offset: u64 = err
        .split("byte offset ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no offset in {err}"));
    assert!(offset > 0 && offset < cut as u64, "offset {offset} within the file");
    assert!(parquet_files(&store.join("connections")) > 0, "rows before the cut are written");
}

#[test]
fn garbage_empty_and_unknown_link_type_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");

    let garbage = dir.path().join("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture file at all, just text\n".repeat(10)).unwrap();
    let out = standalone(&garbage, &store);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("garbage.pcap") && err.contains("not a pcap or pcapng file"), "{err}");

    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    let out = standalone(&empty, &store);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("empty.pcap") && err.contains("empty"), "{err}");

    // A valid pcap header with link type 147 (USER0) and one record.
    let mut f = pcap_header(147);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&4u32.to_le_bytes());
    f.extend_from_slice(&4u32.to_le_bytes());
    f.extend_from_slice(&[1, 2, 3, 4]);
    let odd = dir.path().join("user0.pcap");
    std::fs::write(&odd, &f).unwrap();
    let out = standalone(&odd, &store);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("user0.pcap") && err.contains("link type 147"), "{err}");

    let missing = dir.path().join("nope.pcap");
    let out = standalone(&missing, &store);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("nope.pcap"), "{err}");
}

#[test]
fn malformed_packets_are_counted_not_fatal() {
    // Valid file structure, but the frames are garbage: counted and skipped, exit 0.
    let dir = tempfile::tempdir().unwrap();
    let mut f = pcap_header(1);
    for i in 0..50u32 {
        let frame: Vec<u8> = [0u8; 12]
            .iter()
            .copied()
            .chain([0x08, 0x00, 0x45])
            .chain((0..i).map(|x| x as u8))
            .collect();
        f.extend_from_slice(&i.to_le_bytes());
        f.extend_from_slice(&[0; 4]);
        f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        f.extend_from_slice(&frame);
    }
    let pcap = dir.path().join("bad-frames.pcap");
    std::fs::write(&pcap, &f).unwrap();
    let out = podwire(&[
        "standalone",
        "--pcap",
        pcap.to_str().unwrap(),
        "--store",
        dir.path().join("s").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("packets read                  50"), "{err}");
    assert!(err.contains("bad_ip_header") || err.contains("bad_transport_header"), "{err}");
}

#[test]
fn help_teaches() {
    let out = podwire(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in ["demo", "standalone", "Examples", "kubectl get pods,services,nodes -A -o json"] {
        assert!(text.contains(needle), "--help lacks {needle}: {text}");
    }
    let out = podwire(&["standalone", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["--pcap", "--inventory", "--store", "PODWIRE_STORE", "hour=HH"] {
        assert!(text.contains(needle), "standalone --help lacks {needle}: {text}");
    }
}

#[test]
fn reads_a_capture_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let input = std::fs::File::open(shared("edge/deepflow-syn-retrans.pcap")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_podwire"))
        .args(["standalone", "--pcap", "-", "--store", store.to_str().unwrap()])
        .stdin(input)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("packets read                   8"), "{err}");
    assert!(err.contains("closed                       1"), "{err}");
    assert!(parquet_files(&store.join("connections")) == 1);
}

#[test]
fn a_store_that_cannot_be_written_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    // A file where the `connections` folder must go: every write of that table fails.
    std::fs::write(store.join("connections"), b"in the way").unwrap();
    let out = standalone(&shared("edge/deepflow-syn-retrans.pcap"), &store);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("writing the store failed") && err.contains("connections"), "{err}");
}

#[test]
fn an_unknown_or_empty_protocol_switch_is_refused_with_the_names() {
    let pcap = shared("1kxun.pcap");
    let store = tempfile::tempdir().unwrap();
    let base = ["standalone", "--pcap", pcap.to_str().unwrap(), "--store"];
    for bad in ["tcp,http", ""] {
        let out =
            podwire(&[&base[..], &[store.path().to_str().unwrap(), "--protocols", bad]].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("[possible values: tcp, udp, dns, icmp]"), "{bad}: {err}");
    }
    assert_eq!(parquet_files(store.path()), 0, "nothing written");
}
