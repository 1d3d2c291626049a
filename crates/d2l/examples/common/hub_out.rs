//! The command line of the examples that read one data file and write plots
//! (`language_models`, `minibatch_sgd`): `--data-dir DIR` for the data hub and `--out DIR`
//! for the plots. Included with `#[path = "common/hub_out.rs"] mod hub_out;`.

use d2l::data::hub::DataHub;
use std::path::PathBuf;

/// The data hub (`--data-dir` first, then `D2L_DATA_DIR`, its cache and the system
/// copies) and the plot folder (`--out`, or `default_out`); exits with a usage line on
/// an unknown or incomplete flag.
pub fn hub_and_out(default_out: &str) -> (DataHub, PathBuf) {
    let mut data_dir: Option<PathBuf> = None;
    let mut out = PathBuf::from(default_out);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next()) {
            ("--data-dir", Some(v)) => data_dir = Some(v.into()),
            ("--out", Some(v)) => out = v.into(),
            (f, _) => {
                eprintln!("error: unknown or incomplete option `{f}`\nusage: [--data-dir DIR] [--out DIR]");
                std::process::exit(2)
            }
        }
    }
    let mut hub = DataHub::from_env();
    if let Some(d) = data_dir {
        hub = hub.with_data_dir(d);
    }
    (hub, out)
}
