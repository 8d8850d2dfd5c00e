//! The `aimc` binary: parse the command line, call the library, print `Error: ...` and exit 1 on
//! failure.

/// `println!`/`eprintln!` that ignore a closed pipe (`aimc run ... | head -1`): results are in
/// files by then, and a progress line must never abort a run.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
macro_rules! say_err {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

mod cli;

use aimc::crossbar::TileShape;
use aimc::report::publish::Staging;
use anyhow::{bail, Context, Result};
use clap::Parser;
use cli::{Cli, Command, CommonArgs};

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        say_err!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn parse_tile(s: &str) -> Result<TileShape> {
    let (a, b) = s.split_once(['x', 'X']).with_context(|| format!("--tile {s}: expected INPUTSxOUTPUTS, e.g. 512x512"))?;
    let (max_in, max_out): (u32, u32) = (a.trim().parse()?, b.trim().parse()?);
    if max_in == 0 || max_out == 0 || max_in > aimc::crossbar::MAX_TILE_IN {
        bail!("--tile {s}: inputs must be 1..={} and outputs >= 1", aimc::crossbar::MAX_TILE_IN);
    }
    Ok(TileShape { max_in, max_out })
}

/// A path for an experiment document built from flags (relative to the working directory).
fn path_value(p: &std::path::Path) -> toml::Value {
    p.display().to_string().into()
}

/// `aimc weights` and `aimc mlp` are front ends of the experiment runner: their flags become an
/// experiment document that the experiment loader validates (the same checks and messages as a
/// file) and `run_experiment` runs, so they write the same results, plots and report as `aimc run`.
fn flags_experiment(name: &str, workload: &str, model: toml::Table, data: Option<toml::Table>, c: &CommonArgs) -> Result<aimc::config::Experiment> {
    if c.trials == 0 {
        bail!("--trials 0: need at least 1 trial");
    }
    let tile = c.tile.as_deref().map(parse_tile).transpose()?;
    let mut doc = toml::Table::new();
    doc.insert("name".into(), name.into());
    doc.insert("description".into(), format!("aimc {name} from the command line").into());
    doc.insert("workload".into(), workload.into());
    doc.insert("seed".into(), toml::Value::Integer(c.seed as i64));
    doc.insert("trials".into(), toml::Value::Integer(c.trials as i64));
    // Device, GDC and tile are written only where a flag gives them (else the engine's defaults:
    // pcm, readout, 512x512), so a `--set sweep.gdc=[...]` may sweep them; a flag given and swept
    // is refused as a file that sets and sweeps a field is.
    if let Some(g) = c.gdc {
        doc.insert("gdc".into(), toml::Value::try_from(aimc::crossbar::Gdc::from(g))?);
    }
    let mut device = toml::Table::new();
    if let Some(d) = &c.device {
        device.insert("model".into(), d.clone().into());
    }
    doc.insert("model".into(), model.into());
    if let Some(d) = data {
        doc.insert("data".into(), d.into());
    } else if let Some(s) = c.set.iter().find(|s| s.trim_start().starts_with("data.")) {
        bail!("--set {s}: aimc {name} has no data set");
    }
    doc.insert("device".into(), device.into());
    doc.insert("periphery".into(), toml::Table::new().into());
    if let Some(tile) = tile {
        let mut t = toml::Table::new();
        t.insert("max_in".into(), toml::Value::Integer(tile.max_in as i64));
        t.insert("max_out".into(), toml::Value::Integer(tile.max_out as i64));
        doc.insert("tile".into(), t.into());
    }
    let mut sweep = toml::Table::new();
    sweep.insert("t".into(), toml::Value::Array(c.times.iter().map(|x| x.trim().into()).collect()));
    doc.insert("sweep".into(), sweep.into());
    // The same setter as `aimc run --set`, on the document the flags built: every field an
    // experiment file takes (top-level or SECTION.FIELD) is settable here too.
    let text = toml::to_string(&doc)?;
    let path = format!("aimc {name} (flags)");
    // A flag whose field a --set axis replaces at every point is named as the flag (the loader
    // would name a line of the document the flags built).
    let mut probe = doc.clone();
    if aimc::config::overrides::apply_sets(&mut probe, &c.set).is_ok() {
        if let Ok((swept, _)) = aimc::config::Experiment::swept_fields(&toml::to_string(&probe)?, std::path::Path::new(&path)) {
            for (flag, field, given) in
                [("--gdc", "gdc", c.gdc.is_some()), ("--device", "device.model", c.device.is_some()), ("--tile", "tile", c.tile.is_some())]
            {
                if let Some(f) = swept.iter().find(|f| given && (*f == field || f.starts_with(&format!("{field}.")))) {
                    bail!("{flag} sets {f}, which a --set sweep axis replaces at every point: {flag} would go unused while results.json recorded it; leave out {flag} or the axis");
                }
            }
        }
    }
    Ok(aimc::config::Experiment::from_text_with_sets(&text, std::path::Path::new(&path), &c.set)?)
}

/// Runs a validated experiment on `backend` and writes results, plots and report into `dir`
/// (`aimc run`, `aimc weights`, `aimc mlp`); `json` also gets a copy of results.json.
fn run_experiment(
    exp: &aimc::config::Experiment,
    backend: aimc::engine::BackendChoice,
    dir: std::path::PathBuf,
    profile: bool,
    overwrite: bool,
    json: Option<&std::path::Path>,
) -> Result<()> {
    // Where --json goes is checked before any compute, so a typo does not cost the run.
    if let Some(j) = json {
        if j.is_dir() {
            bail!("--json {}: is a directory; give a file name, e.g. {}", j.display(), j.join("results.json").display());
        }
        if let Some(parent) = j.parent().filter(|p| !p.as_os_str().is_empty() && !p.is_dir()) {
            bail!("--json {}: its directory {} does not exist (or is not a directory); create it or choose another path", j.display(), parent.display());
        }
    }
    let mut progress = ProgressOut::new();
    let (r, path) =
        aimc::run::pipeline::run_to_dir(exp, backend, &dir, profile, overwrite, &mut progress, &mut |m| say_err!("{m}")).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(j) = json {
        std::fs::copy(&path, j).with_context(|| format!("writing {}", j.display()))?;
        say_err!("wrote {}", j.display());
    }
    say!("{}", aimc::report::console::console_summary(&r));
    say!("{:.1} s, {:.0} trials/s; results in {} (report.md, report.html, plots)", r.run_seconds, r.trials_per_second, path.parent().unwrap().display());
    Ok(())
}

/// A progress bar with trials/s and ETA on a terminal; plain lines (every ~10 %) otherwise.
struct ProgressOut {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    done: u64,
    next_line: u64,
    start: std::time::Instant,
}

impl ProgressOut {
    fn new() -> Self {
        ProgressOut { bar: None, total: 0, done: 0, next_line: 0, start: std::time::Instant::now() }
    }
}

impl aimc::run::Progress for ProgressOut {
    fn start(&mut self, total: u64) {
        use std::io::IsTerminal;
        self.total = total;
        self.start = std::time::Instant::now();
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} trials  {per_sec}  ETA {eta}").unwrap().progress_chars("=> "),
            );
            self.bar = Some(bar);
        } else {
            self.next_line = total.div_ceil(10);
        }
    }
    fn advance(&mut self, n: u64) {
        self.done += n;
        if let Some(b) = &self.bar {
            b.inc(n);
        } else if self.done >= self.next_line && self.done < self.total {
            let secs = self.start.elapsed().as_secs_f64();
            let rate = self.done as f64 / secs.max(1e-9);
            say_err!(
                "progress: {}/{} trials ({:.0} %), {:.1} trials/s, ETA {:.0} s",
                self.done,
                self.total,
                100.0 * self.done as f64 / self.total as f64,
                rate,
                (self.total - self.done) as f64 / rate.max(1e-9)
            );
            self.next_line += self.total.div_ceil(10);
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run { experiment, backend, out, trials, shard, profile, ci_halfwidth, max_trials, set, overwrite } => {
            let mut exp = aimc::config::Experiment::load_with_trials(&experiment, &set, trials)?;
            if let Some(x) = ci_halfwidth {
                if shard.is_some() {
                    bail!("--ci-halfwidth with --shard: adaptive trials decide the trial count as they go; run shards with a fixed count");
                }
                exp.set_adaptive(x, max_trials)?;
            }
            let mut default_dir = std::path::PathBuf::from("results").join(&exp.name);
            if let Some(s) = &shard {
                let (k, n) = if s == "env" {
                    let (k, n, from) = aimc::config::shard_from_env(|v| std::env::var(v).ok()).map_err(anyhow::Error::msg)?;
                    say_err!("shard {k}/{n} from {from}");
                    (k, n)
                } else {
                    let (k, n) = s.split_once('/').with_context(|| format!("--shard {s}: expected K/N, e.g. 0/4, or env"))?;
                    (
                        k.trim().parse().with_context(|| format!("--shard {s}: K must be an integer"))?,
                        n.trim().parse().with_context(|| format!("--shard {s}: N must be an integer"))?,
                    )
                };
                exp.apply_shard(k, n)?;
                // A sibling of results/NAME, not a folder inside it: the single run and the merge
                // write results/NAME, which must not hold folders aimc does not write.
                default_dir = std::path::PathBuf::from("results").join(format!("{}.shard-{k}-of-{n}", exp.name));
            }
            run_experiment(&exp, backend.into(), out.unwrap_or(default_dir), profile, overwrite, None)
        }
        Command::Merge { out, shards, overwrite } => {
            let parts = shards.iter().map(|d| aimc::results::Results::load(d)).collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::msg)?;
            let r = aimc::run::merge::merge(parts)?;
            let staging = Staging::begin(&out, &mut |m| say_err!("{m}"))?;
            staging.check_replace(&r.config, overwrite)?;
            r.save(staging.path(), true).with_context(|| format!("writing merged results for {}", out.display()))?;
            aimc::report::write_report(&r, staging.path())?;
            let path = staging.publish()?.join("results.json");
            say!("{}", aimc::report::console::console_summary(&r));
            say!("merged {} shards ({} trials) into {}", shards.len(), r.trials, path.display());
            Ok(())
        }
        Command::Check { experiment, backend, set } => {
            let exp = aimc::config::Experiment::load_with_sets(&experiment, &set)?;
            // The buffer sizes against the backend the run would open (its binding limit).
            let be = aimc::engine::open(backend.into())?;
            let ad = be.adapter();
            aimc::run::check::check_sizes(&exp, &format!("the {} adapter {}", ad.backend, ad.name), be.max_binding_bytes())
                .map_err(|e| anyhow::anyhow!("{}: {e}", experiment.display()))?;
            say!(
                "{}: ok ({:?}, {} sweep points x {} times x {} trials, {} layers)",
                experiment.display(),
                exp.workload,
                exp.points.len(),
                exp.times.len(),
                exp.trials,
                exp.layers.len()
            );
            Ok(())
        }
        Command::Report { dir } => {
            let r = aimc::results::Results::load(&dir).map_err(anyhow::Error::msg)?;
            // Rebuilt as a whole set (results.json and trials.csv rewritten from the results), so
            // a kill mid-rebuild leaves the old set.
            let staging = Staging::begin(&dir, &mut |m| say_err!("{m}"))?;
            r.save(staging.path(), true).with_context(|| format!("writing results for {}", dir.display()))?;
            aimc::report::write_report(&r, staging.path())?;
            staging.publish()?;
            say!("rebuilt the plots and report in {}", dir.display());
            Ok(())
        }
        Command::Devices => {
            let list = aimc::engine::gpu::list_adapters();
            if list.is_empty() {
                say!("no GPU adapters (install a Vulkan driver; on Debian: apt-get install -y mesa-vulkan-drivers libvulkan1)");
            }
            let hw = aimc::engine::gpu::choose(&list, aimc::engine::gpu::AdapterPick::Hardware);
            let any = aimc::engine::gpu::choose(&list, aimc::engine::gpu::AdapterPick::Any);
            say!("{:<3} {:<44} {:<8} {:<14} {:<30} used by", "#", "name", "backend", "type", "driver");
            for (i, a) in list.iter().enumerate() {
                let info = aimc::engine::gpu::info_of(a);
                let mut used = Vec::new();
                if hw == Some(i) {
                    used.push("--backend auto");
                }
                if any == Some(i) {
                    used.push("--backend gpu");
                }
                say!("{:<3} {:<44} {:<8} {:<14} {:<30} {}", i, info.name, info.backend, info.device_type, info.driver, used.join(", "));
            }
            if hw.is_none() {
                say!("--backend auto uses the CPU backend ({} threads): no hardware GPU", aimc::engine::cpu::default_threads());
            }
            Ok(())
        }
        Command::Weights { matrix, tensor, common } => {
            let mut model = toml::Table::new();
            model.insert("path".into(), path_value(&matrix));
            if let Some(t) = tensor {
                model.insert("tensor".into(), t.into());
            }
            let exp = flags_experiment("weights", "weight_error", model, None, &common)?;
            run_experiment(
                &exp,
                common.backend.into(),
                common.out.clone().unwrap_or_else(|| "results/weights".into()),
                false,
                common.overwrite,
                common.json.as_deref(),
            )
        }
        Command::Mlp { model, data, scale, rows, activation, common } => {
            let mut m = toml::Table::new();
            m.insert("path".into(), path_value(&model));
            m.insert("activation".into(), format!("{activation:?}").to_lowercase().into());
            let mut d = toml::Table::new();
            d.insert("path".into(), path_value(&data));
            d.insert("scale".into(), (scale as f64).into());
            if let Some(r) = rows {
                let (a, b) = r.split_once("..").with_context(|| format!("--rows {r}: expected START..END, e.g. 1347..1797"))?;
                let (a, b): (i64, i64) = (
                    a.trim().parse().with_context(|| format!("--rows {r}: START must be an integer"))?,
                    b.trim().parse().with_context(|| format!("--rows {r}: END must be an integer"))?,
                );
                d.insert("rows".into(), toml::Value::Array(vec![a.into(), b.into()]));
            }
            let exp = flags_experiment("mlp", "classifier", m, Some(d), &common)?;
            run_experiment(
                &exp,
                common.backend.into(),
                common.out.clone().unwrap_or_else(|| "results/mlp".into()),
                false,
                common.overwrite,
                common.json.as_deref(),
            )
        }
        Command::Bench { backend, size, breakdown, cases, runs } => {
            aimc::bench::CaseFilter::parse(&cases).and_then(|only| aimc::bench::run(backend.into(), &size, breakdown, &only, runs)).map_err(Into::into)
        }
        c @ (Command::TrainDigits { .. } | Command::TrainDigitsMoe { .. } | Command::TrainDigitsCnn { .. } | Command::TrainTransformer { .. }) => {
            train_command(c)
        }
    }
}

/// The digits CSV's train and test splits (the trainers' data).
#[cfg(feature = "train")]
fn digits_split(data: &std::path::Path) -> Result<(aimc::train::Dataset, aimc::train::Dataset)> {
    let (train, test) = aimc::train::split_digits(&aimc::train::read_digits_csv(data)?);
    if test.is_empty() {
        bail!(
            "--data {}: {} rows, but the trainers train on rows 0..{} and test on the rest, so there would be no test rows; give a file of more than {} rows (experiments/data/digits.csv has 1797)",
            data.display(),
            train.len(),
            aimc::train::DIGITS_TRAIN_ROWS,
            aimc::train::DIGITS_TRAIN_ROWS
        );
    }
    Ok((train, test))
}

/// The `[training]` section of `--training FILE` (the floating-point default without one) and the
/// rebuild command recorded in the model file.
#[cfg(feature = "train")]
fn training_file(path: Option<&std::path::Path>, command: &str, out: &std::path::Path) -> Result<(aimc::train::hwa::TrainingConfig, String)> {
    match path {
        None => Ok((Default::default(), command.to_string())),
        Some(p) => Ok((aimc::train::hwa::TrainingConfig::read(p)?, aimc::train::hwa::command_with_training(command, p, out))),
    }
}

/// The train-digits* commands (the trainers of the shipped models).
#[cfg(feature = "train")]
fn train_command(command: Command) -> Result<()> {
    match command {
        Command::TrainDigitsMoe { out, data, training } => {
            let (train, test) = digits_split(&data)?;
            let cfg = aimc::train::moe::MoeTrainConfig::default();
            let (hwa, command) = training_file(training.as_deref(), aimc::train::moe::TRAINING_COMMAND, &out)?;
            let start = std::time::Instant::now();
            let model = aimc::train::moe::train_moe_with(&train, &cfg, &hwa)?;
            aimc::train::moe::save_safetensors(&model, &command, &out)?;
            let load: Vec<String> = aimc::train::moe::expert_load(&model, &test).iter().map(|l| format!("{:.0} %", 100.0 * l)).collect();
            say!(
                "digits MoE ({} experts, top-{}, d_ff {}; {}) trained in {:.1} s: train accuracy {:.2} %, test accuracy {:.2} %; expert load on test {}; wrote {}",
                cfg.experts,
                cfg.top_k,
                cfg.d_ff,
                hwa.summary(),
                start.elapsed().as_secs_f64(),
                100.0 * aimc::train::moe::accuracy(&model, &train),
                100.0 * aimc::train::moe::accuracy(&model, &test),
                load.join(" / "),
                out.display()
            );
            Ok(())
        }
        Command::TrainDigitsCnn { out, data, training } => {
            let (train, test) = digits_split(&data)?;
            let cfg = aimc::train::cnn::CnnTrainConfig::default();
            let (hwa, command) = training_file(training.as_deref(), aimc::train::cnn::TRAINING_COMMAND, &out)?;
            let start = std::time::Instant::now();
            let model = aimc::train::cnn::train_cnn_with(&train, &cfg, &hwa)?;
            aimc::train::cnn::save_safetensors(&model, &command, &out)?;
            say!(
                "digits CNN (channels {} and {}; {}) trained in {:.1} s: train accuracy {:.2} %, test accuracy {:.2} %; wrote {}",
                cfg.channels[0],
                cfg.channels[1],
                hwa.summary(),
                start.elapsed().as_secs_f64(),
                100.0 * aimc::train::cnn::accuracy(&model, &train),
                100.0 * aimc::train::cnn::accuracy(&model, &test),
                out.display()
            );
            Ok(())
        }
        Command::TrainDigits { out, data, hidden, activation, training } => {
            let d = aimc::train::mlp::TrainConfig::default();
            let cfg =
                aimc::train::mlp::TrainConfig { hidden: hidden.unwrap_or(d.hidden.clone()), activation: activation.map_or(d.activation, Into::into), ..d };
            if cfg.hidden.contains(&0) {
                bail!("--hidden {:?}: every width must be >= 1", cfg.hidden);
            }
            let (train, test) = digits_split(&data)?;
            let (hwa, command) = training_file(training.as_deref(), &aimc::train::mlp::training_command(&cfg), &out)?;
            let start = std::time::Instant::now();
            let model = aimc::train::mlp::train_mlp_with(&train, &cfg, &hwa)?;
            aimc::train::mlp::save_safetensors(&model, &command, &out)?;
            let dims: Vec<String> = model.dims().iter().map(usize::to_string).collect();
            say!(
                "{} MLP ({}; {}) trained in {:.1} s: train accuracy {:.2} %, test accuracy {:.2} %; wrote {}",
                dims.join("-"),
                aimc::train::activation_name(cfg.activation),
                hwa.summary(),
                start.elapsed().as_secs_f64(),
                100.0 * aimc::train::mlp::accuracy(&model, &train),
                100.0 * aimc::train::mlp::accuracy(&model, &test),
                out.display()
            );
            Ok(())
        }
        Command::TrainTransformer { task, attention, out, data_out, data, text, epochs, lr, train_rows, validation, training } => {
            use aimc::train::transformer::{self as tf, Attention, Task};
            let task = match task {
                cli::TaskArg::Listops => Task::ListOps,
                cli::TaskArg::Digits => Task::Digits,
                cli::TaskArg::Cicero => Task::Cicero,
                cli::TaskArg::Kvqa => Task::Kvqa,
            };
            let attention = match attention {
                cli::AttentionArg::Softmax => Attention::Softmax,
                cli::AttentionArg::Kernel => Attention::Kernel,
            };
            let mut cfg = tf::TransformerTrainConfig::shipped(task, attention);
            cfg.epochs = epochs.unwrap_or(cfg.epochs);
            cfg.lr = lr.unwrap_or(cfg.lr);
            cfg.listops.train_rows = train_rows.unwrap_or(cfg.listops.train_rows);
            if cfg.epochs == 0 || cfg.listops.train_rows == 0 {
                bail!("--epochs and --train-rows must be >= 1");
            }
            let digits = match task {
                Task::Digits => Some(aimc::train::read_digits_csv(&data)?),
                Task::ListOps | Task::Cicero | Task::Kvqa => None,
            };
            let text = match task {
                Task::Cicero => Some(std::fs::read_to_string(&text).with_context(|| format!("--text {}: reading the training text", text.display()))?),
                _ => None,
            };
            let (train, mut test) = tf::task_data(&cfg, digits.as_ref(), text.as_deref())?;
            if let Some(p) = &data_out {
                let csv = if cfg.dims.lm {
                    aimc::train::text::rows_csv(&test)
                } else if cfg.dims.span {
                    aimc::train::kvqa::span_csv(&test)
                } else {
                    test.to_csv()
                };
                std::fs::write(p, csv).with_context(|| format!("writing {}", p.display()))?;
                say_err!("wrote the {} test split ({} rows) to {}", task.name(), test.len(), p.display());
                if task == Task::Kvqa {
                    use aimc::train::kvqa::{squad_text, SQUAD_STRIDE, SQUAD_WINDOW};
                    let (rows, json) = squad_text(&test, SQUAD_WINDOW, SQUAD_STRIDE);
                    for (name, body) in [("kvqa_windows.csv", rows), ("kvqa_text.json", json)] {
                        let q = p.with_file_name(name);
                        std::fs::write(&q, body).with_context(|| format!("writing {}", q.display()))?;
                        say_err!("wrote {}", q.display());
                    }
                }
            }
            let split = if validation {
                test = match text.as_deref() {
                    Some(t) => aimc::train::text::splits(t, cfg.dims.max_len)?.1,
                    None if task == Task::ListOps => aimc::train::listops::splits(&cfg.listops).1,
                    None if task == Task::Kvqa => aimc::train::kvqa::splits().1,
                    None => bail!("--validation: the digits task has no validation split"),
                };
                "validation"
            } else {
                "test"
            };
            let out = out.unwrap_or_else(|| tf::default_out(task, attention).into());
            let (hwa, command) = training_file(training.as_deref(), &tf::training_command(&cfg), &out)?;
            let start = std::time::Instant::now();
            let net = tf::train_transformer_hwa(&train, &cfg, &hwa, |e, loss| {
                say_err!("epoch {}: mean training loss {loss:.4} ({:.0} s)", e + 1, start.elapsed().as_secs_f64())
            })?;
            let secs = start.elapsed().as_secs_f64();
            tf::save_safetensors(&net, task, &command, &out)?;
            if cfg.dims.lm {
                let ppl = |d: &aimc::train::listops::SeqData| {
                    let (nll, hits, n) = net.next_token(d);
                    format!("perplexity {:.3}, next-character accuracy {:.2} %", (nll / n as f64).exp(), 100.0 * hits as f64 / n as f64)
                };
                say!(
                    "{} language model ({}) trained in {secs:.1} s: train {}, {split} {} ({} windows); wrote {}",
                    task.name(),
                    hwa.summary(),
                    ppl(&train),
                    ppl(&test),
                    test.len(),
                    out.display()
                );
                return Ok(());
            }
            if cfg.dims.span {
                let score = |d: &aimc::train::listops::SeqData| {
                    let (exact, f1) = net.span_scores(d, aimc::workload::transformer::MAX_ANSWER_TOKENS as usize, aimc::workload::transformer::N_BEST as usize);
                    format!("exact match {:.2} %, F1 {:.2} %", 100.0 * exact as f64 / d.len() as f64, 100.0 * f1 / d.len() as f64)
                };
                say!(
                    "{} reader ({} attention; {}) trained in {secs:.1} s: train {}, {split} {} ({} rows); wrote {}",
                    task.name(),
                    attention.name(),
                    hwa.summary(),
                    score(&train),
                    score(&test),
                    test.len(),
                    out.display()
                );
                return Ok(());
            }
            say!(
                "{} transformer ({} attention; {}) trained in {secs:.1} s: train accuracy {:.2} %, {split} accuracy {:.2} % ({} rows); wrote {}",
                task.name(),
                attention.name(),
                hwa.summary(),
                100.0 * net.accuracy(&train),
                100.0 * net.accuracy(&test),
                test.len(),
                out.display()
            );
            Ok(())
        }
        _ => unreachable!("train_command is called for the train-digits* commands only"),
    }
}

/// Without the `train` feature the train-digits* commands exist but say how to get them.
#[cfg(not(feature = "train"))]
fn train_command(_command: Command) -> Result<()> {
    bail!("this aimc was built without the trainers; rebuild with --features train (on by default) to retrain the shipped models")
}
