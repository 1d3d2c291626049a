//! The airfoil self-noise data of D2L 11.5: the real file (1,503 rows, standardised as
//! `get_data_ch11` does) and the parser's errors.

use d2l_data::airfoil::{load_airfoil, AirfoilTable, AIRFOIL_BOOK_ROWS};
use d2l_data::hub::DataHub;
use std::path::PathBuf;

fn shared_data() -> Option<PathBuf> {
    let d = d2l_testkit::shared_data("airfoil/airfoil_self_noise.dat");
    if d.is_none() {
        println!("skipped: ../shared/data/airfoil not found");
    }
    d
}

#[test]
fn real_file_standardised_like_the_book() {
    let Some(dir) = shared_data() else { return };
    let t = AirfoilTable::read(dir.join("airfoil/airfoil_self_noise.dat")).unwrap();
    assert_eq!((t.rows(), t.columns()), (1503, 6));
    assert_eq!(t.row(0), &[800.0, 0.0, 0.3048, 71.3, 0.00266337, 126.201]);
    let s = t.standardized().unwrap();
    for (m, sd) in s.column_stats() {
        assert!(m.abs() < 1e-9 && (sd - 1.0).abs() < 1e-9, "{m} {sd}");
    }
    // Through the hub (checks the SHA-1): the first 1500 rows, 5 features.
    let hub = DataHub::new(std::env::temp_dir().join("d2l-airfoil-test-cache"))
        .with_data_dir(&dir)
        .without_system_dirs()
        .offline(true)
        .quiet();
    let (x, y) = load_airfoil(&hub, AIRFOIL_BOOK_ROWS).unwrap();
    assert_eq!((x.shape(), y.shape()), (&[1500, 5][..], &[1500][..]));
    let row0 = &x.to_f64_vec()[..5];
    for (a, b) in row0.iter().zip(s.row(0)) {
        assert!((a - b).abs() < 1e-6);
    }
    assert!((y.to_f64_vec()[0] - s.row(0)[5]).abs() < 1e-6);
}

#[test]
fn parse_errors_name_the_line() {
    let e = AirfoilTable::parse("1 2 3 4 5 6\n1 2 3 4 5\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("line 2") && e.contains("expected 6 values, got 5"),
        "{e}"
    );
    let e = AirfoilTable::parse("1 2 3 x 5 6\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1") && e.contains("`x`"), "{e}");
    assert!(AirfoilTable::parse("\n\n").is_err());
    let t = AirfoilTable::parse("1 2 3 4 5 6\r\n\r\n2 2 4 5 6 8\r\n").unwrap();
    assert_eq!(t.rows(), 2);
    let e = t.standardized().unwrap_err().to_string();
    assert!(e.contains("column 1 is constant"), "{e}");
    assert!(t.to_tensors(3).is_err());
    assert!(t.to_tensors(0).is_err());
    let (x, y) = t.to_tensors(2).unwrap();
    assert_eq!(x.shape(), &[2, 5]);
    assert_eq!(y.to_f64_vec(), vec![6.0, 8.0]);
}

#[test]
fn missing_file_offline_is_a_clear_error() {
    let empty = tempfile::tempdir().unwrap();
    let hub = DataHub::new(empty.path().join("cache"))
        .with_data_dir(empty.path())
        .without_system_dirs()
        .offline(true)
        .quiet();
    let e = load_airfoil(&hub, 10).unwrap_err().to_string();
    assert!(e.contains("airfoil/airfoil_self_noise.dat"), "{e}");
}
