//! D2L chapter 2 points not covered by a command: 2.1.6 saving memory (`Y = Y + X` makes a
//! new tensor, `Y += X` and `Z[:] = X + Y` write in place — the book's `id(Y)` checks,
//! here as "shares the same storage"), 2.2 data preprocessing of `house_tiny.csv` (missing
//! values and one-hot categories) through the same CSV pipeline as 4.10's Kaggle data, and
//! 2.6 / 3.1.3's normal density through `d2l::tensor::distributions`. The figures of 2.4
//! and 3.1.3 are `d2l prelim-demo`.
//!
//! Run (from the repo root): `cargo run --release -p d2l --example preliminaries`

use d2l::data::house::{preprocess, read_csv, ColumnKind, CsvTable};
use d2l::prelude::*;
use d2l::tensor::distributions::Normal;

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // 2.1.6: saving memory.
    let x = Tensor::arange(0.0, 12.0, 1.0)?.reshape(&[3, 4])?;
    let mut y = Tensor::ones(&[3, 4]);
    let before = y.clone();
    y = y.add(&x)?; // Y = Y + X: a new tensor
    println!(
        "Y = Y + X:  same memory as before? {}",
        y.shares_storage(&before)
    );
    let before = y.clone();
    y.add_(&x)?; // Y += X: in place
    println!(
        "Y += X:     same memory as before? {}",
        y.shares_storage(&before)
    );
    let z = y.zeros_like();
    let z_before = z.clone();
    z.copy_(&x.add(&y)?)?; // Z[:] = X + Y
    println!(
        "Z[:] = X + Y: same memory as before? {}",
        z.shares_storage(&z_before)
    );

    // 2.2: house_tiny.csv, written as the book writes it.
    let dir = std::env::temp_dir().join(format!("d2l-house-tiny-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("house_tiny.csv");
    std::fs::write(
        &path,
        "NumRooms,RoofType,Price\nNA,NA,127500\n2,NA,106000\n4,Slate,178100\nNA,NA,140000\n",
    )?;
    let table = read_csv(&path)?;
    println!("\n{}", table.header.join(","));
    for r in &table.rows {
        println!("{}", r.join(","));
    }
    // The 4.10 pipeline wants (Id, features..., label) and a test table without the label.
    let with_id = |t: &CsvTable| CsvTable {
        header: std::iter::once("Id".to_string())
            .chain(t.header.clone())
            .collect(),
        rows: t
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| std::iter::once(i.to_string()).chain(r.clone()).collect())
            .collect(),
    };
    let train = with_id(&table);
    let test = CsvTable {
        header: train.header[..train.header.len() - 1].to_vec(),
        rows: Vec::new(),
    };
    let house = preprocess(&train, &test, &path)?;
    println!("\ninputs after the 4.10 pipeline (numbers standardised, missing → the mean = 0, one-hot with a nan column):");
    println!("{}", house.feature_names.join("  "));
    println!("{}", house.train_features);
    // The book's view (fillna with the mean, no standardisation): undo the scaling.
    if let Some((_, ColumnKind::Numeric { mean, std })) = house.columns.first() {
        let rooms = house
            .train_features
            .narrow(1, 0, 1)?
            .mul_scalar(*std)?
            .add_scalar(*mean)?;
        println!(
            "NumRooms with the missing values filled by the mean (the book's table): {:?}",
            rooms.to_f64_vec()
        );
    }
    println!("targets: {:?}", house.train_labels.to_f64_vec());
    std::fs::remove_dir_all(&dir)?;

    // 2.6 / 3.1.3: the normal density, log-density and distribution function.
    let n = Normal::new(0.0, 1.0)?;
    let t = Tensor::from_vec(vec![-1.0f64, 0.0, 1.0], &[3])?;
    println!("\nN(0, 1) at -1, 0, 1: pdf {:?}", n.pdf(&t)?.to_f64_vec());
    println!("                     cdf {:?}", n.cdf(&t)?.to_f64_vec());
    println!(
        "                log_prob {:?}",
        n.log_prob(&t)?.to_f64_vec()
    );
    Ok(())
}
