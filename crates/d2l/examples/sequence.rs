//! D2L 8.1, *Sequence Models*: the noisy sine x_t = sin(0.01 t) + N(0, 0.2²), t = 1..1000,
//! an MLP (`Linear(4, 10), ReLU, Linear(10, 1)`, Xavier-uniform weights) on τ = 4 lagged
//! values trained with Adam (lr 0.01, batch 16, 5 epochs, `MSELoss(reduction='none')`
//! summed) on the first 600 examples, then one-step, multi-step and k-step predictions.
//! The section's code, step by step; `d2l seq-demo` runs the same experiment (with the
//! k-step error curve) from the library.
//!
//! Run (from the repo root):
//! `cargo run --release -p d2l --example sequence -- --out runs/sequence`
//!
//! Options: `--out DIR` (where the plots go; default `runs/sequence`), `--epochs N`,
//! `--seed N`.

use d2l::book::sequence::{kstep_columns, lag_features, mse, multistep_predictions, sequence_net};
use d2l::prelude::*;
use d2l::train::plot::{save_line_plot, PlotSpec, Series};
use std::error::Error;
use std::path::PathBuf;

struct Args {
    out: PathBuf,
    epochs: usize,
    seed: u64,
}

fn parse_args() -> Args {
    let mut a = Args {
        out: PathBuf::from("runs/sequence"),
        epochs: 5,
        seed: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next();
        let bad = |m: &str| -> ! {
            eprintln!("error: {m}\nusage: [--out DIR] [--epochs N] [--seed N]");
            std::process::exit(2)
        };
        match (flag.as_str(), value) {
            ("--out", Some(v)) => a.out = PathBuf::from(v),
            ("--epochs", Some(v)) => {
                a.epochs = v
                    .parse()
                    .unwrap_or_else(|_| bad("--epochs expects a number"))
            }
            ("--seed", Some(v)) => {
                a.seed = v.parse().unwrap_or_else(|_| bad("--seed expects a number"))
            }
            (f, _) => bad(&format!("unknown or incomplete option `{f}`")),
        }
    }
    a
}

fn main() -> std::result::Result<(), Box<dyn Error>> {
    let args = parse_args();
    let mut g = Generator::new(args.seed);
    let (t_max, tau, n_train, batch_size, lr) = (1000, 4, 600, 16, 0.01);

    // x = sin(0.01 * time) + normal(0, 0.2, (T,))
    let x: Vec<f64> = (1..=t_max)
        .map(|t| ((0.01 * t as f64).sin() + 0.2 * g.normal_f64()) as f32 as f64)
        .collect();
    // features[:, i] = x[i: T - tau + i]; labels = x[tau:]
    let (features, labels) = lag_features(&x, tau)?;
    let train = Tensor::from_vec((0..n_train as i64).collect::<Vec<_>>(), &[n_train])?;
    let (xtr, ytr) = (
        features.index_select(0, &train)?,
        labels.index_select(0, &train)?,
    );

    // get_net() and train(net, train_iter, loss, 5, 0.01)
    let net = sequence_net(tau, 10, &mut g)?;
    let mut trainer = Adam::new(net.parameters(), lr)?;
    for epoch in 0..args.epochs {
        let order = d2l::tensor::random::randperm(&mut g, n_train);
        for chunk in order.chunks(batch_size) {
            let idx = Tensor::from_vec(chunk.to_vec(), &[chunk.len()])?;
            let (xb, yb) = (xtr.index_select(0, &idx)?, ytr.index_select(0, &idx)?);
            trainer.zero_grad();
            let l = mse_loss_with(&net.forward(&xb)?, &yb, Reduction::None)?;
            l.sum_all()?.backward()?;
            trainer.step()?;
        }
        let loss =
            no_grad(|| mse_loss_with(&net.forward(&xtr)?, &ytr, Reduction::Mean)?.item_f64())?;
        println!("epoch {}, loss: {loss:.6}", epoch + 1);
    }

    // onestep_preds = net(features)
    let onestep = no_grad(|| net.forward(&features))?.to_f64_vec();
    // multistep_preds[i] = net(multistep_preds[i - tau:i])
    let multistep = multistep_predictions(&net, &x, tau, n_train + tau)?;
    // k-step: column tau + k - 1 predicts k steps ahead from the observed x[i..i + tau].
    let max_steps = 64;
    let rows = t_max - tau - max_steps + 1;
    let cols = kstep_columns(&net, &x, tau, max_steps)?;

    let first = n_train + tau;
    println!(
        "1-step MSE after the training range: {:.4}; multi-step MSE from index {first}: {:.4}",
        mse(&onestep[n_train..], &x[first..]),
        mse(&multistep[first..], &x[first..])
    );
    for k in [1, 4, 16, 64] {
        let c = &cols[tau + k - 1];
        println!(
            "{k}-step preds: MSE {:.4}",
            mse(c, &x[tau + k - 1..tau + k - 1 + rows])
        );
    }

    let time = |from: usize, n: usize| (from + 1..=from + n).map(|t| t as f64).collect();
    let spec = PlotSpec {
        xlabel: "time".into(),
        ylabel: "x".into(),
        xlim: Some((1.0, 1000.0)),
        ..Default::default()
    };
    save_line_plot(
        &args.out.join("multistep"),
        &spec,
        &[
            Series::new("data", time(0, t_max), x.clone()),
            Series::new("1-step preds", time(tau, onestep.len()), onestep),
            Series::new(
                "multistep preds",
                time(first, t_max - first),
                multistep[first..].to_vec(),
            ),
        ],
    )?;
    let ks: Vec<Series> = [1, 4, 16, 64]
        .iter()
        .map(|&k| {
            Series::new(
                format!("{k}-step preds"),
                time(tau + k - 1, rows),
                cols[tau + k - 1].clone(),
            )
        })
        .collect();
    save_line_plot(&args.out.join("kstep"), &spec, &ks)?;
    println!(
        "plots: {}/multistep.png, {}/kstep.png",
        args.out.display(),
        args.out.display()
    );
    Ok(())
}
