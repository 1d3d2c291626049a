//! D2L 11.5, *Minibatch Stochastic Gradient Descent*: linear regression on the airfoil
//! self-noise data (first 1,500 rows, standardised — the book's `get_data_ch11`) trained
//! by `train_ch11` as batch gradient descent (lr 1, batch 1500, 10 epochs), stochastic
//! gradient descent (0.005, 1, 2), and minibatch SGD (0.4, 100, 2) and (0.05, 10, 2); the
//! loss against examples seen and against training time in one figure. `d2l gd-compare`
//! runs the same plus momentum, Adam and the 11.3 examples.
//!
//! Run (from the repo root):
//! `cargo run --release -p d2l --example minibatch_sgd -- --data-dir ../shared/data`
//!
//! Options: `--data-dir DIR` (where `airfoil/airfoil_self_noise.dat` lives; the data hub
//! also reads `D2L_DATA_DIR` and its cache, and downloads when online), `--out DIR`
//! (default `runs/minibatch_sgd`).

#[path = "common/hub_out.rs"]
mod hub_out;

use d2l::book::gd::{train_ch11, Ch11Method, Ch11Run, GdCase};
use d2l::data::airfoil::load_airfoil;
use d2l::prelude::Generator;
use d2l::train::plot::{save_line_panels, Panel, PlotSpec, Series};
use hub_out::hub_and_out;
use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let (hub, out) = hub_and_out("runs/minibatch_sgd");
    let (x, y) = load_airfoil(&hub, 1500)?;

    // train_sgd(lr, batch_size, num_epochs) = train_ch11(sgd, None, {'lr': lr}, ...)
    let mut g = Generator::new(0);
    let mut train_sgd = |name: &str, lr: f64, batch: usize, epochs: usize| {
        let case = GdCase::new(name, Ch11Method::Sgd, lr, batch, epochs);
        let r = train_ch11(&x, &y, &case, 200, &mut g)?;
        println!(
            "{name}: loss: {:.3}, {:.5} sec/epoch",
            r.final_loss(),
            r.book_sec_per_epoch
        );
        Ok::<Ch11Run, Box<dyn Error>>(r)
    };
    let runs = [
        train_sgd("gd", 1.0, 1500, 10)?,
        train_sgd("sgd", 0.005, 1, 2)?,
        train_sgd("batch size=100", 0.4, 100, 2)?,
        train_sgd("batch size=10", 0.05, 10, 2)?,
    ];
    println!("book: gd 0.243, sgd 0.246, batch size=100 0.243, batch size=10 0.243");

    let curves = |f: &dyn Fn(&Ch11Run) -> Vec<f64>| -> Vec<Series> {
        runs.iter()
            .map(|r| Series::new(r.case.name.clone(), f(r), r.losses.clone()))
            .collect()
    };
    let panel = |xlabel: &str, series: Vec<Series>| Panel {
        spec: PlotSpec {
            xlabel: xlabel.into(),
            ylabel: "loss".into(),
            log_x: true,
            ..Default::default()
        },
        series,
    };
    let (png, _) = save_line_panels(
        &out.join("gd-sgd-minibatch"),
        &[
            panel(
                "examples",
                curves(&|r| r.examples.iter().map(|&e| e as f64).collect()),
            ),
            panel("time (sec)", curves(&|r| r.times.clone())),
        ],
    )?;
    println!("plot: {}", png.display());
    Ok(())
}
