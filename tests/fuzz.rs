//! Deterministic fuzzing of every loader: valid files mutated by seeded random edits (byte flips,
//! truncation, inserted garbage, duplicated spans, numbers swapped for NaN or huge values) must give
//! either a clean result or an error message, never a panic, and a clean result never carries a
//! non-finite value. The mutations come from Philox, so a failure reproduces from its case number.

use aimc::workload::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

/// Mutated variants per file: a few hundred cover the header, length and parser paths in well
/// under a second each.
const CASES: u32 = 300;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One seeded mutation of `bytes`.
fn mutate(bytes: &[u8], case: u32) -> Vec<u8> {
    let key = aimc::rng::key(0xF022, case);
    let r = |i: u32| aimc::rng::philox4x32_10([case, i, 0xF0, 0], key);
    let mut b = bytes.to_vec();
    let edits = 1 + r(0)[0] % 4;
    for e in 0..edits {
        let w = r(1 + e);
        let n = b.len().max(1);
        let at = w[1] as usize % n;
        match w[0] % 6 {
            0 => {
                if !b.is_empty() {
                    b[at] ^= 1 << (w[2] % 8);
                }
            }
            1 => b.truncate(at),
            2 => b.splice(at..at, w[2].to_le_bytes()).for_each(drop),
            3 => {
                let end = (at + 1 + w[2] as usize % 64).min(b.len());
                let span = b[at.min(end)..end].to_vec();
                b.splice(at..at, span).for_each(drop);
            }
            4 => {
                let s = ["NaN", "inf", "-1e39", "1e400", "\"x\"", ",,", "\n"][w[2] as usize % 7];
                let at = at.min(b.len());
                b.splice(at..at, s.bytes()).for_each(drop);
            }
            _ => {
                if !b.is_empty() {
                    b[at] = w[2] as u8;
                }
            }
        }
    }
    b
}

/// Runs `f` on every mutation of `bytes`; a panic fails the test with its case number.
fn fuzz<T>(name: &str, bytes: &[u8], f: impl Fn(&[u8]) -> Result<T, String>, finite: impl Fn(&T) -> bool) {
    let (mut ok, mut err) = (0, 0);
    for case in 0..CASES {
        let m = mutate(bytes, case);
        match catch_unwind(AssertUnwindSafe(|| f(&m))) {
            Ok(Ok(v)) => {
                assert!(finite(&v), "{name} case {case}: accepted a non-finite value");
                ok += 1;
            }
            Ok(Err(msg)) => {
                assert!(!msg.trim().is_empty(), "{name} case {case}: an empty error message");
                err += 1;
            }
            Err(_) => panic!("{name} case {case}: the loader panicked"),
        }
    }
    assert!(err > 0, "{name}: no mutation was refused ({ok} accepted)");
}

#[test]
fn state_dicts_never_panic() {
    let bytes = std::fs::read(root().join("experiments/models/digits_mlp.safetensors")).unwrap();
    fuzz("safetensors", &bytes, io::parse_state_dict, |ls| ls.iter().all(|l| l.weight.data.iter().chain(&l.bias).all(|v| v.is_finite())));
}

#[test]
fn npy_matrices_never_panic() {
    let m = io::Matrix { rows: 5, cols: 7, data: aimc::rng::uniform_signed(35, 3) };
    fuzz("npy", &io::npy_bytes(&m), io::parse_npy, |m| m.data.iter().all(|v| v.is_finite()) && m.data.len() == m.rows * m.cols);
}

#[test]
fn npz_archives_never_panic() {
    use std::io::Write;
    let m = io::Matrix { rows: 5, cols: 7, data: aimc::rng::uniform_signed(35, 3) };
    for method in [zip::CompressionMethod::Stored, zip::CompressionMethod::Deflated] {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file("x.npy", zip::write::SimpleFileOptions::default().compression_method(method)).unwrap();
        w.write_all(&io::npy_bytes(&m)).unwrap();
        let bytes = w.finish().unwrap().into_inner();
        fuzz("npz", &bytes, |b| io::parse_npz_array(b, "x"), |m| m.data.iter().all(|v| v.is_finite()) && m.data.len() == m.rows * m.cols);
    }
}

#[test]
fn csv_data_never_panics() {
    let bytes = std::fs::read(root().join("experiments/data/iris.csv")).unwrap();
    for header in [true, false] {
        fuzz(
            "csv",
            &bytes,
            |b| io::parse_csv_with(&String::from_utf8_lossy(b), 1.0, header),
            |d| d.x.iter().all(|v| v.is_finite()) && d.x.len() == d.labels.len() * d.n_features,
        );
    }
}

#[test]
fn experiment_files_never_panic() {
    let base = root().join("experiments");
    for f in ["smoke.toml", "kernel_rbf.toml", "moe_3d.toml", "digits_budget.toml"] {
        let text = std::fs::read(base.join(f)).unwrap();
        fuzz(
            f,
            &text,
            |b| aimc::experiment::Experiment::from_text(&String::from_utf8_lossy(b), &base.join(f)).map_err(|e| e.to_string()),
            |e| e.trials >= 2 && !e.points.is_empty(),
        );
    }
}
