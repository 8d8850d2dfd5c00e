//! Deterministic fuzzing of every loader: valid files mutated by seeded random edits (byte flips,
//! truncation, inserted garbage, duplicated spans, numbers swapped for NaN or huge values) must give
//! either a clean result or an error message, never a panic, and a clean result never carries a
//! non-finite value. The mutations come from Philox, so a failure reproduces from its case number.
//! Results files get structural edits too (deleted keys, wrong types, shortened arrays, huge
//! numbers), and what loads must go through `aimc report` and `aimc merge` without a panic.

use crate::common;

use aimc::results::Results;
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
    eprintln!("{name}: {ok} mutations accepted, {err} refused with a message");
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
    for f in ["smoke.toml", "kernel_rbf.toml", "moe_3d.toml", "digits_budget.toml", "digits_resnet.toml"] {
        let text = std::fs::read(base.join(f)).unwrap();
        fuzz(
            f,
            &text,
            |b| aimc::config::Experiment::from_text(&String::from_utf8_lossy(b), &base.join(f)).map_err(|e| e.to_string()),
            |e| e.trials >= 2 && !e.points.is_empty(),
        );
    }
}

/// An empty file, or one cut after its first line, names the fields every experiment file sets
/// and where a complete one is.
#[test]
fn truncated_experiment_files_say_what_every_file_sets() {
    let path = root().join("experiments/cut.toml");
    let text = std::fs::read_to_string(root().join("experiments/smoke.toml")).unwrap();
    let first = text.lines().find(|l| l.starts_with("name")).unwrap();
    for cut in ["", first] {
        let e = aimc::config::Experiment::from_text(cut, &path).unwrap_err().to_string();
        assert!(e.contains("missing field") && e.contains("every experiment file sets name, workload, seed, trials") && e.contains("smoke.toml"), "{e}");
    }
}

/// Structural edits of a results file per base file: each picks one field (uniformly over the
/// schema's field paths, then over that field's instances) and deletes, retypes, shortens or
/// inflates it.
const RESULT_CASES: u32 = 160;

/// Every node of `v` as a JSON pointer, grouped by its path with array indices as `*`.
fn nodes(v: &serde_json::Value, at: String, shape: String, out: &mut std::collections::BTreeMap<String, Vec<String>>) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                let k2 = k.replace('~', "~0").replace('/', "~1");
                nodes(x, format!("{at}/{k2}"), format!("{shape}/{k2}"), out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                nodes(x, format!("{at}/{i}"), format!("{shape}/*"), out);
            }
        }
        _ => {}
    }
    if !at.is_empty() {
        out.entry(shape).or_default().push(at);
    }
}

/// One seeded structural edit of a results file.
fn mutate_results(v: &serde_json::Value, case: u32) -> String {
    let key = aimc::rng::key(0xF023, case);
    let w = aimc::rng::philox4x32_10([case, 0, 0xF1, 0], key);
    let w2 = aimc::rng::philox4x32_10([case, 1, 0xF1, 0], key);
    let mut v = v.clone();
    let op = w[0] % 8;
    if op == 7 {
        // Text truncation at an offset spread over the whole file.
        let text = serde_json::to_string_pretty(&v).unwrap();
        let mut at = ((u64::from(w[1]) * text.len() as u64) >> 32) as usize;
        // Cut on a character boundary: notes carry non-ASCII text such as '−'.
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        return text[..at].to_string();
    }
    let mut groups = std::collections::BTreeMap::new();
    nodes(&v, String::new(), String::new(), &mut groups);
    let shapes: Vec<&Vec<String>> = groups.values().collect();
    let inst = shapes[w[1] as usize % shapes.len()];
    let at = inst[w[2] as usize % inst.len()].clone();
    let (parent, last) = at.rsplit_once('/').unwrap();
    match op {
        0 => match v.pointer_mut(parent).unwrap() {
            serde_json::Value::Object(o) => {
                o.remove(&last.replace("~1", "/").replace("~0", "~"));
            }
            serde_json::Value::Array(a) => {
                a.remove(last.parse::<usize>().unwrap());
            }
            _ => unreachable!(),
        },
        1 => {
            *v.pointer_mut(&at).unwrap() =
                [serde_json::json!("x"), serde_json::json!(null), serde_json::json!([]), serde_json::json!({}), serde_json::json!(-1), serde_json::json!(true)]
                    [w[3] as usize % 6]
                    .clone()
        }
        2 => {
            // Shorten the nearest array at or above the field.
            let mut p = at.clone();
            loop {
                if let Some(serde_json::Value::Array(a)) = v.pointer_mut(&p) {
                    let n = a.len();
                    a.truncate(w[3] as usize % n.max(1));
                    break;
                }
                match p.rsplit_once('/') {
                    Some((q, _)) if !q.is_empty() => p = q.to_string(),
                    _ => break,
                }
            }
        }
        3 => *v.pointer_mut(&at).unwrap() = serde_json::json!([1e300, -1e300, 1e30, 3.0e29, -0.5, 1e-300][w[3] as usize % 6]),
        4 => *v.pointer_mut(&at).unwrap() = serde_json::json!([0, 1, 4294967296u64, u64::MAX, 2, 1000000][w[3] as usize % 6]),
        5 => {
            // Two edits of the same kind elsewhere: a deleted element and a zeroed number.
            let other = &shapes[w2[0] as usize % shapes.len()];
            let at2 = other[w2[1] as usize % other.len()].clone();
            if let Some(x) = v.pointer_mut(&at2) {
                *x = serde_json::json!(0);
            }
            if let Some(serde_json::Value::Array(a)) = v.pointer_mut(parent) {
                if !a.is_empty() {
                    a.pop();
                }
            }
        }
        _ => {
            // Duplicate an array element (one entry too many).
            if let Some(serde_json::Value::Array(a)) = v.pointer_mut(parent) {
                if let Some(x) = a.first().cloned() {
                    a.push(x);
                }
            }
        }
    }
    serde_json::to_string_pretty(&v).unwrap()
}

/// Small runs of each results shape: a classifier (layers, energy, paired, shards), its noise
/// budget, a kernel workload and a MoE cost model.
fn base_results() -> Vec<(&'static str, Vec<Results>)> {
    let base = root().join("experiments");
    let read = |f: &str| std::fs::read_to_string(base.join(f)).unwrap();
    let run = |text: &str, shards: u32| -> Vec<Results> {
        (0..shards)
            .map(|k| {
                let mut e = common::experiment(text).unwrap();
                if shards > 1 {
                    e.apply_shard(k, shards).unwrap();
                }
                common::run_ok(&mut common::cpu(), &e)
            })
            .collect()
    };
    let smoke = read("smoke.toml");
    let budget = read("digits_budget.toml")
        .replace("trials = 500", "trials = 6")
        .replace("rows = [1347, 1797]", "rows = [1347, 1447]")
        .replace("t = [\"1s\", \"1d\", \"10y\"]", "t = [\"1d\"]");
    let moe = read("moe_digits.toml")
        .replace("trials = 200", "trials = 4")
        .replace("t = [\"1s\", \"1d\", \"1y\", \"10y\"]", "t = [\"1d\"]")
        .replace("tier_noise_slope = [0.0, 1.0, 3.0]", "");
    vec![
        ("smoke shards", run(&smoke, 2)),
        ("budget", run(&budget, 1)),
        ("kernel", run(&common::IRIS_ERROR.replace("t = [\"1h\"]", "t = [\"1h\", \"1d\"]\nfeatures = [16, 32]"), 1)),
        ("moe", run(&moe, 1)),
    ]
}

/// What `aimc report` and `aimc merge` do with a loaded file; a panic fails the test.
fn report_and_merge(r: &Results, others: &[Results], dir: &std::path::Path) {
    let _ = r.trials_csv();
    let _ = aimc::report::write_report(r, dir);
    if !others.is_empty() {
        let mut parts = vec![r.clone()];
        parts.extend(others.iter().cloned());
        if let Ok(m) = aimc::run::merge::merge(parts) {
            let _ = aimc::report::write_report(&m, dir);
        }
    }
}

#[test]
fn results_files_never_panic_report_or_merge() {
    let dir = std::env::temp_dir().join(format!("aimc-fuzz-results-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, files) in base_results() {
        let json = serde_json::to_value(&files[0]).unwrap();
        let text = serde_json::to_string_pretty(&files[0]).unwrap();
        // The unmutated file loads, validates, and comes back equal.
        std::fs::write(dir.join("results.json"), &text).unwrap();
        assert_eq!(Results::load(&dir).unwrap_or_else(|e| panic!("{name}: {e}")), files[0], "{name}: a round trip changed the results");
        let (mut ok, mut err) = (0, 0);
        let mut check = |m: &[u8], case: String| {
            std::fs::write(dir.join("results.json"), m).unwrap();
            match catch_unwind(AssertUnwindSafe(|| Results::load(&dir))) {
                Ok(Ok(r)) => {
                    ok += 1;
                    if catch_unwind(AssertUnwindSafe(|| report_and_merge(&r, &files[1..], &dir.join("report")))).is_err() {
                        panic!("{name} {case}: report or merge panicked on a file that loaded")
                    }
                }
                Ok(Err(e)) => {
                    assert!(!e.to_string().trim().is_empty(), "{name} {case}: an empty error message");
                    err += 1;
                }
                Err(_) => panic!("{name} {case}: Results::load panicked"),
            }
        };
        for case in 0..RESULT_CASES {
            check(mutate_results(&json, case).as_bytes(), format!("structural case {case}"));
        }
        for case in 0..CASES / 6 {
            check(&mutate(text.as_bytes(), case), format!("byte case {case}"));
        }
        assert!(err > RESULT_CASES / 4, "{name}: only {err} mutations refused ({ok} accepted)");
        eprintln!("{name}: {ok} mutated files loaded and went through report and merge, {err} refused");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn results_errors_name_the_field() {
    let base = root().join("experiments");
    let e = common::experiment(&std::fs::read_to_string(base.join("smoke.toml")).unwrap()).unwrap();
    let r = common::run_ok(&mut common::cpu(), &e);
    let mut v = serde_json::to_value(&r).unwrap();
    v["points"][3]["per_trial_correct"].as_array_mut().unwrap().pop();
    let msg = Results::from_json(&v.to_string()).unwrap_err().to_string();
    assert!(msg.contains("points[3].per_trial_correct") && msg.contains("7 entries but per_trial has 8"), "{msg}");
    let mut v = serde_json::to_value(&r).unwrap();
    v["schema_version"] = 1.into();
    assert_eq!(Results::from_json(&v.to_string()).unwrap().schema_version, aimc::results::SCHEMA_VERSION, "version 1 is read as the current version");
    v["schema_version"] = 3.into();
    let msg = Results::from_json(&v.to_string()).unwrap_err().to_string();
    assert!(msg.contains("schema version 3"), "{msg}");
    let mut v = serde_json::to_value(&r).unwrap();
    v["points"][0]["histogram"]["hi"] = 1e300.into();
    let msg = Results::from_json(&v.to_string()).unwrap_err().to_string();
    assert!(msg.contains("points[0].histogram.hi"), "{msg}");
}

/// [`fuzz`] of one input file of the experiment `exp`: each mutation written to `file`, then the
/// whole experiment loaded.
pub(crate) fn fuzz_experiment_file(
    name: &str,
    bytes: &[u8],
    file: &std::path::Path,
    exp: &std::path::Path,
    finite: impl Fn(&aimc::config::Experiment) -> bool,
) {
    let load = |b: &[u8]| {
        std::fs::write(file, b).unwrap();
        aimc::config::Experiment::load(exp).map_err(|e| e.to_string())
    };
    fuzz(name, bytes, load, finite);
}

/// An experiment on `experiments/kvqa.toml`'s reader in its own directory, reading `rows.csv`
/// (and whatever `data` adds to `[data]`): its directory and file.
fn kvqa_experiment(name: &str, data: &str) -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let model = root().join("experiments/models/kvqa_softmax.safetensors");
    let exp = dir.join("exp.toml");
    let text = format!(
        "name = \"q\"\nworkload = \"transformer\"\nseed = 1\ntrials = 2\n[model]\npath = \"{}\"\n[data]\npath = \"rows.csv\"\n{data}[transformer]\ntask = \"qa_f1\"\nsegment_sep = 2\nheads = 2\nrepeat_layers = 2\nembed_scale = 8.0\npad_id = 0\n[sweep]\nt = [\"1h\"]\n",
        model.display()
    );
    std::fs::write(&exp, text).unwrap();
    (dir, exp)
}

/// Question answering's data (token rows, then each answer's start and end column) through the
/// whole validation of `experiments/kvqa.toml`'s reader: spans out of the row, outside the
/// context, reversed or not integers are refused by row; nothing panics.
#[test]
fn question_answering_rows_never_panic() {
    let rows: String = std::fs::read_to_string(root().join("experiments/data/kvqa_test.csv")).unwrap().lines().take(12).map(|l| format!("{l}\n")).collect();
    let (dir, exp) = kvqa_experiment("fuzz-kvqa", "");
    // The file as shipped loads: the cases below start from a valid experiment.
    std::fs::write(dir.join("rows.csv"), &rows).unwrap();
    assert_eq!(aimc::config::Experiment::load(&exp).unwrap_or_else(|e| panic!("{e}")).data.unwrap().answers(), 1);
    fuzz_experiment_file("kvqa rows", rows.as_bytes(), &dir.join("rows.csv"), &exp, |e| {
        let d = e.data.as_ref().unwrap();
        d.spans.len() == d.labels.len() && d.x.iter().all(|v| v.is_finite())
    });
}

/// SQuAD's answer text (`data.answer_text`: questions' contexts and answers, windows' questions
/// and offsets) through the whole validation of `experiments/kvqa_squad.toml`'s reader:
/// mutations are refused with a message or load into text whose every span can be read and
/// scored; nothing panics.
#[test]
fn answer_text_never_panics() {
    let shipped: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root().join("experiments/data/kvqa_text.json")).unwrap()).unwrap();
    let rows: Vec<serde_json::Value> = shipped["rows"].as_array().unwrap().iter().filter(|r| r["question"].as_u64().unwrap() < 6).cloned().collect();
    let windows: String =
        std::fs::read_to_string(root().join("experiments/data/kvqa_windows.csv")).unwrap().lines().take(rows.len()).map(|l| format!("{l}\n")).collect();
    let json = serde_json::json!({"questions": shipped["questions"].as_array().unwrap()[..6], "rows": rows}).to_string();
    let (dir, exp) = kvqa_experiment("fuzz-squad", "answer_text = \"text.json\"\n");
    std::fs::write(dir.join("rows.csv"), windows).unwrap();
    std::fs::write(dir.join("text.json"), &json).unwrap();
    assert_eq!(aimc::config::Experiment::load(&exp).unwrap_or_else(|e| panic!("{e}")).data.unwrap().text.unwrap().questions.len(), 6);
    fuzz_experiment_file("answer text", json.as_bytes(), &dir.join("text.json"), &exp, |e| {
        let t = e.data.as_ref().unwrap().text.as_ref().unwrap();
        t.score(0.0, |_| (Some((3usize, 13usize, 0.0f32)), 1.0f32)).iter().all(|q| q.f1.is_finite())
    });
}
