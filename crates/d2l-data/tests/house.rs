//! Kaggle house prices (D2L 4.10): the book's preprocessing on the real files (331
//! features), log-RMSE, K-fold splits, and clear errors for malformed CSV files.

use d2l_data::house::{k_fold_split, log_rmse, read_csv, ColumnKind, KaggleHouse};
use d2l_data::DataError;
use d2l_tensor::Tensor;
use std::path::{Path, PathBuf};

fn house_dir() -> Option<PathBuf> {
    d2l_testkit::shared_path_or_skip("kaggle_house")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn format_msg<T: std::fmt::Debug>(r: Result<T, DataError>) -> String {
    match r {
        Err(e @ DataError::Format { .. }) => e.to_string(),
        other => panic!("expected a Format error, got {other:?}"),
    }
}

#[test]
fn real_files_match_the_book() {
    let Some(dir) = house_dir() else { return };
    let train_csv = dir.join("kaggle_house_pred_train.csv");
    let test_csv = dir.join("kaggle_house_pred_test.csv");
    let tr = read_csv(&train_csv).unwrap();
    let te = read_csv(&test_csv).unwrap();
    assert_eq!((tr.rows.len(), tr.header.len()), (1460, 81));
    assert_eq!((te.rows.len(), te.header.len()), (1459, 80));

    let h = KaggleHouse::load(&train_csv, &test_csv).unwrap();
    assert_eq!(
        h.num_features(),
        331,
        "the book's all_features.shape is (2919, 331)"
    );
    assert_eq!(h.train_features.shape(), &[1460, 331]);
    assert_eq!(h.test_features.shape(), &[1459, 331]);
    assert_eq!(h.train_labels.shape(), &[1460, 1]);
    assert_eq!(h.test_ids.first().map(String::as_str), Some("1461"));
    let numeric = h
        .columns
        .iter()
        .filter(|(_, k)| matches!(k, ColumnKind::Numeric { .. }))
        .count();
    assert_eq!((numeric, h.columns.len()), (36, 79));
    // numeric first (MSSubClass ... YrSold), then dummies with a nan column each
    assert_eq!(
        &h.feature_names[..3],
        &["MSSubClass", "LotFrontage", "LotArea"]
    );
    assert_eq!(h.feature_names[35], "YrSold");
    assert_eq!(
        &h.feature_names[36..42],
        &[
            "MSZoning_C (all)",
            "MSZoning_FV",
            "MSZoning_RH",
            "MSZoning_RL",
            "MSZoning_RM",
            "MSZoning_nan"
        ]
    );
    assert!(h.feature_names.contains(&"MasVnrType_None".to_string()));
    assert_eq!(h.feature_names.last().unwrap(), "SaleCondition_nan");

    // The book prints train_data.iloc[0:4, [0, 1, 2, 3, -3, -2, -1]]: first label 208500.
    let y = h.train_labels.to_vec::<f32>();
    assert_eq!(&y[..4], &[208500.0, 181500.0, 223500.0, 140000.0]);

    // Standardised numeric columns over train+test: mean 0, sample std 1 (missing → 0).
    let f = 331;
    let a = h.train_features.to_vec::<f32>();
    let b = h.test_features.to_vec::<f32>();
    for j in [0usize, 2, 35] {
        let col: Vec<f64> = a
            .chunks(f)
            .chain(b.chunks(f))
            .map(|r| r[j] as f64)
            .collect();
        let m = col.iter().sum::<f64>() / col.len() as f64;
        let s =
            (col.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (col.len() - 1) as f64).sqrt();
        assert!(m.abs() < 1e-5, "column {j}: mean {m}");
        assert!((s - 1.0).abs() < 1e-4, "column {j}: std {s}");
    }
    // LotFrontage has missing values: they became exactly 0.
    assert!(a.chunks(f).any(|r| r[1] == 0.0));
    // Every categorical column contributes exactly one 1 per row.
    let cats = h.columns.len() - numeric;
    for r in a.chunks(f).chain(b.chunks(f)) {
        let ones = r[36..].iter().filter(|&&v| v == 1.0).count();
        assert_eq!(ones, cats);
        assert!(r[36..].iter().all(|&v| v == 0.0 || v == 1.0));
    }
    // Alley is mostly NA: the indicator is set on row 0 of the training set.
    let alley_nan = h
        .feature_names
        .iter()
        .position(|n| n == "Alley_nan")
        .unwrap();
    assert_eq!(a[alley_nan], 1.0);

    // 5 folds of 292 rows, as in the book
    for i in 0..5 {
        let (xt, yt, xv, yv) = k_fold_split(5, i, &h.train_features, &h.train_labels).unwrap();
        assert_eq!(xt.shape(), &[1168, 331]);
        assert_eq!(yt.shape(), &[1168, 1]);
        assert_eq!(xv.shape(), &[292, 331]);
        assert_eq!(yv.shape(), &[292, 1]);
    }
    // log-rmse of the training-label mean as the prediction is a sane positive number
    let mean = y.iter().map(|&v| v as f64).sum::<f64>() / y.len() as f64;
    let preds = Tensor::full(&[1460, 1], mean as f32);
    let l = log_rmse(&preds, &h.train_labels).unwrap();
    assert!(l > 0.3 && l < 0.5, "{l}");
}

#[test]
fn log_rmse_clamps_and_matches_hand_values() {
    let y = Tensor::from_vec(vec![1.0f32, std::f32::consts::E], &[2, 1]).unwrap();
    let p = Tensor::from_vec(vec![1.0f32, std::f32::consts::E], &[2, 1]).unwrap();
    assert!(log_rmse(&p, &y).unwrap().abs() < 1e-6);
    // a negative prediction is clamped to 1: log 1 - log e = -1 → sqrt((0 + 1) / 2)
    let p = Tensor::from_vec(vec![1.0f32, -5.0], &[2, 1]).unwrap();
    assert!((log_rmse(&p, &y).unwrap() - 0.5f64.sqrt()).abs() < 1e-6);
    let short = Tensor::from_vec(vec![1.0f32], &[1, 1]).unwrap();
    assert!(matches!(log_rmse(&short, &y), Err(DataError::Invalid(_))));
}

#[test]
fn k_fold_is_contiguous_and_drops_the_remainder() {
    let x = Tensor::from_vec((0..11).map(|v| v as f32).collect::<Vec<_>>(), &[11, 1]).unwrap();
    let y = Tensor::from_vec((0..11).map(|v| v as f32 * 10.0).collect::<Vec<_>>(), &[11]).unwrap();
    let (xt, yt, xv, yv) = k_fold_split(3, 1, &x, &y).unwrap();
    assert_eq!(xv.to_vec::<f32>(), vec![3.0, 4.0, 5.0]);
    assert_eq!(yv.to_vec::<f32>(), vec![30.0, 40.0, 50.0]);
    assert_eq!(xt.to_vec::<f32>(), vec![0.0, 1.0, 2.0, 6.0, 7.0, 8.0]);
    assert_eq!(yt.to_vec::<f32>(), vec![0.0, 10.0, 20.0, 60.0, 70.0, 80.0]);
    assert!(k_fold_split(1, 0, &x, &y).is_err());
    assert!(k_fold_split(3, 3, &x, &y).is_err());
    assert!(k_fold_split(12, 0, &x, &y).is_err());
    let y2 = Tensor::from_vec(vec![0.0f32; 10], &[10]).unwrap();
    assert!(k_fold_split(2, 0, &x, &y2).is_err());
}

#[test]
fn small_crafted_tables() {
    let dir = tempfile::tempdir().unwrap();
    let tr = write(
        dir.path(),
        "train.csv",
        "Id,A,B,C,Price\r\n1,1.5,x,NA,100\r\n2,NA,y,7,200\r\n3,4.5,NA,8,300\r\n",
    );
    let te = write(dir.path(), "test.csv", "Id,A,B,C\n4,3,\"y\",NA\n\n");
    let h = KaggleHouse::load(&tr, &te).unwrap();
    assert_eq!(h.feature_names, vec!["A", "C", "B_x", "B_y", "B_nan"]);
    // A: values 1.5, 4.5, 3 → mean 3, std 1.5; C: 7, 8 → mean 7.5, std 0.7071
    let a = h.train_features.to_vec::<f32>();
    let s = std::f32::consts::FRAC_1_SQRT_2;
    let expect = [
        -1.0, 0.0, 1.0, 0.0, 0.0, //
        0.0, -s, 0.0, 1.0, 0.0, //
        1.0, s, 0.0, 0.0, 1.0,
    ];
    for (x, e) in a.iter().zip(expect) {
        assert!((x - e).abs() < 1e-5, "{a:?}");
    }
    assert_eq!(
        h.test_features.to_vec::<f32>(),
        vec![0.0, 0.0, 0.0, 1.0, 0.0]
    );
    assert_eq!(h.train_labels.to_vec::<f32>(), vec![100.0, 200.0, 300.0]);
    assert_eq!(h.test_ids, vec!["4"]);
}

#[test]
fn malformed_csv_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good_test = write(dir.path(), "test.csv", "Id,A\n9,1\n");
    let empty = write(dir.path(), "empty.csv", "");
    let msg = format_msg(read_csv(&empty));
    assert!(msg.contains("empty"), "{msg}");
    let blank = write(dir.path(), "blank.csv", "\n\n");
    format_msg(read_csv(&blank));
    let ragged = write(dir.path(), "ragged.csv", "Id,A,Price\n1,2,3\n2,3\n");
    let msg = format_msg(read_csv(&ragged));
    assert!(
        msg.contains("line 3") && msg.contains("2 fields") && msg.contains("header has 3"),
        "{msg}"
    );
    let no_header = write(dir.path(), "nohead.csv", "1,2,3\n4,5,6\n");
    let msg = format_msg(read_csv(&no_header));
    assert!(msg.contains("header"), "{msg}");
    let quote = write(dir.path(), "quote.csv", "Id,A\n1,\"open\n");
    let msg = format_msg(read_csv(&quote));
    assert!(msg.contains("unterminated"), "{msg}");
    let bin = dir.path().join("bin.csv");
    std::fs::write(&bin, [0xffu8, 0xfe, 0x00, 0x41]).unwrap();
    format_msg(read_csv(&bin));
    let header_only = write(dir.path(), "ho.csv", "Id,A,Price\n");
    let msg = format_msg(KaggleHouse::load(&header_only, &good_test));
    assert!(msg.contains("no rows"), "{msg}");
    let bad_label = write(dir.path(), "bl.csv", "Id,A,Price\n1,2,cheap\n");
    let msg = format_msg(KaggleHouse::load(&bad_label, &good_test));
    assert!(msg.contains("Price") && msg.contains("cheap"), "{msg}");
    let other_cols = write(dir.path(), "oc.csv", "Id,B\n9,1\n");
    let tr = write(dir.path(), "tr.csv", "Id,A,Price\n1,2,3\n");
    assert!(matches!(
        KaggleHouse::load(&tr, &other_cols),
        Err(DataError::Invalid(_))
    ));
    let missing = dir.path().join("nope.csv");
    assert!(matches!(read_csv(&missing), Err(DataError::Io { .. })));
}
