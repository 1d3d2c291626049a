//! `d2l train char-rnn|char-gru|char-lstm|char-rnn-scratch`: the character-level language
//! models of D2L 8.5, 8.6, 9.1 and 9.2 on *The Time Machine* with the book's settings
//! (first 10,000 characters, batch 32, 35 steps, SGD lr 1, gradient clipping to 1,
//! 500 epochs; 256 hidden units, 512 for the scratch model), sequential partitioning unless
//! `--random-iter`. Prints perplexity and tokens/s every 10 epochs with a sample, then the
//! book's final line and the samples for "time traveller" and "traveller"; `--json` ends
//! with one JSON line. The run directory holds `config.json`, `metrics.csv`, the perplexity
//! curve, `model.safetensors` and `summary.json`.

use super::train::TrainArgs;
use super::CliResult;
use d2l_data::seq::load_data_time_machine;
use d2l_models::rnn_lm::find_char_model;
use d2l_train::tasks::language_model::{train_ch8, SeqTrainConfig};
use serde_json::json;

/// Rejects flags that mean nothing for a character model, and bad numbers.
fn validate(a: &TrainArgs) -> CliResult<()> {
    let unused: [(&str, bool); 8] = [
        ("--optimizer", a.optimizer.is_some()),
        ("--momentum", a.momentum.is_some()),
        ("--weight-decay", a.weight_decay.is_some()),
        ("--dropout", a.dropout.is_some()),
        ("--resize", a.data.resize.is_some()),
        ("--width-mult", a.width_mult != 1.0),
        ("--train-limit", a.data.train_limit.is_some()),
        ("--test-limit", a.data.test_limit.is_some()),
    ];
    for (flag, given) in unused {
        if given {
            return Err(format!(
                "{flag} does not apply to `{}` (character models train with plain SGD on the whole corpus; see --num-hiddens, --max-tokens)",
                a.model
            )
            .into());
        }
    }
    if let Some(d) = &a.data.dataset {
        if d != "time-machine" && d != "timemachine" {
            return Err(format!(
                "`{}` trains on the time-machine text only, got --dataset {d}",
                a.model
            )
            .into());
        }
    }
    if let Some(lr) = a.lr {
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(format!("--lr must be a positive number, got {lr}").into());
        }
    }
    for (flag, v) in [
        ("--epochs", a.epochs),
        ("--batch-size", a.data.batch_size),
        ("--num-steps", a.num_steps),
        ("--num-hiddens", a.num_hiddens),
    ] {
        if v == Some(0) {
            return Err(format!("{flag} must be at least 1, got 0").into());
        }
    }
    Ok(())
}

/// Runs `d2l train` for a `char-*` model.
pub fn run(a: TrainArgs) -> CliResult<()> {
    validate(&a)?;
    let info = find_char_model(&a.model)?;
    let device = a.device.resolve()?;
    a.data.apply_engine_settings()?;
    let epochs = a.epochs.unwrap_or(info.epochs);
    let lr = a.lr.unwrap_or(info.lr);
    let batch = a.data.batch_size.unwrap_or(info.batch_size);
    let steps = a.num_steps.unwrap_or(info.num_steps);
    let hidden = a.num_hiddens.unwrap_or(info.num_hiddens);
    let max_tokens = match a.max_tokens {
        Some(0) => None,
        Some(n) => Some(n),
        None => Some(info.max_tokens),
    };
    let hub = a.data.hub(a.quiet);
    let (mut loader, vocab) =
        load_data_time_machine(&hub, batch, steps, a.random_iter, max_tokens, a.data.seed)?;
    let net = info
        .build(vocab.len(), hidden)
        .map_err(|e| super::sizes::name_flags(e, &format!("--num-hiddens {hidden}")))?;
    let params = net.num_parameters();
    let distributed = super::train::distributed(&a)?;
    let run_dir = super::train::open_train_dir(&a, info.name)?;
    let sampling = if a.random_iter {
        "random sampling"
    } else {
        "sequential partitioning"
    };
    let config = json!({
        "model": info.name, "section": info.section, "dataset": "time-machine",
        "corpus_tokens": loader.corpus().len(), "max_tokens": max_tokens, "vocab_size": vocab.len(),
        "epochs": epochs, "lr": lr, "optimizer": "sgd", "clip": info.clip,
        "batch_size": batch, "num_steps": steps, "num_hiddens": hidden,
        "random_iter": a.random_iter, "seed": a.data.seed,
        "threads": d2l_tensor::num_threads(), "params": params,
    });
    super::train::write_run_config(run_dir.as_ref(), &a, config)?;
    if !a.quiet && a.resume.is_none() {
        eprintln!(
            "training {} ({}, D2L {}) on time-machine[:{}] ({} tokens, vocab {}): {epochs} epochs, batch {batch}, {steps} steps, {hidden} hidden, sgd lr {lr}, clip {}, {sampling}, {params} parameters → {}",
            info.name,
            info.title,
            info.section,
            max_tokens.map_or("all".to_string(), |n| n.to_string()),
            loader.corpus().len(),
            vocab.len(),
            info.clip,
            super::train::run_path(&run_dir).display()
        );
    }
    let run_path = super::train::run_path(&run_dir);
    let cfg = SeqTrainConfig {
        epochs,
        lr,
        clip: info.clip,
        use_random_iter: a.random_iter,
        quiet: a.quiet,
        run_dir,
        device,
        resume: a.resume.is_some(),
        distributed,
        ..Default::default()
    };
    let s = train_ch8(net.as_ref(), &mut loader, &vocab, &cfg)?;
    if s.epochs.is_empty() {
        return super::train::check_interrupted(s.stopped_early.as_deref(), &run_path);
    }
    // The book's closing lines: perplexity, speed, and the two samples.
    println!(
        "perplexity {:.1}, {:.1} tokens/sec on cpu ({} threads); {:.1} s",
        s.perplexity,
        s.tokens_per_sec,
        d2l_tensor::num_threads(),
        s.seconds
    );
    for sample in &s.samples {
        println!("{}", sample.text);
    }
    println!("run saved in {}", run_path.display());
    if a.json {
        let samples: serde_json::Map<String, serde_json::Value> = s
            .samples
            .iter()
            .map(|x| (x.prefix.clone(), json!(x.text)))
            .collect();
        let line = json!({
            "model": info.name, "dataset": "time-machine", "epochs": epochs,
            "epochs_run": s.epochs.len(), "perplexity": s.perplexity,
            "tokens_per_sec": s.tokens_per_sec, "mean_tokens_per_sec": s.mean_tokens_per_sec,
            "lr": lr, "batch_size": batch, "num_steps": steps, "num_hiddens": hidden,
            "max_tokens": max_tokens, "random_iter": a.random_iter, "params": params,
            "seconds": s.seconds, "samples": samples, "run_dir": run_path, "device": s.device,
        });
        println!("{line}");
    }
    super::train::check_interrupted(s.stopped_early.as_deref(), &run_path)
}
