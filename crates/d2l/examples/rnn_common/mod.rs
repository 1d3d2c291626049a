//! Plumbing shared by the chapter 8 RNN examples: the command line (`--data-dir DIR`,
//! `--epochs N`, `--threads N`) and the book's closing report of `train_ch8`.

use d2l::train::tasks::language_model::SeqTrainSummary;

/// `--data-dir DIR`, `--epochs N` and `--threads N`.
pub struct Args {
    pub data_dir: Option<String>,
    pub epochs: usize,
    pub threads: Option<usize>,
}

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}\nusage: [--data-dir DIR] [--epochs N] [--threads N]");
    std::process::exit(2)
}

impl Args {
    /// Parses the flags; `epochs` defaults to the book's 500.
    pub fn parse() -> Args {
        let mut args = Args {
            data_dir: None,
            epochs: 500,
            threads: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let value = it.next();
            let num = |v: &str| -> usize {
                v.parse()
                    .ok()
                    .filter(|&n: &usize| n > 0)
                    .unwrap_or_else(|| {
                        usage(&format!(
                            "{flag} expects a positive whole number, got `{v}`"
                        ))
                    })
            };
            match (flag.as_str(), value) {
                ("--data-dir", Some(v)) => args.data_dir = Some(v),
                ("--epochs", Some(v)) => args.epochs = num(&v),
                ("--threads", Some(v)) => args.threads = Some(num(&v)),
                (f, _) => usage(&format!("unknown or incomplete option `{f}`")),
            }
        }
        if let Some(n) = args.threads {
            d2l::tensor::set_num_threads(n).unwrap_or_else(|e| usage(&e.to_string()));
        }
        args
    }

    /// The data hub: `--data-dir`, then `D2L_DATA_DIR`, the cache, a download.
    pub fn hub(&self) -> d2l::data::hub::DataHub {
        let hub = d2l::data::hub::DataHub::from_env();
        match &self.data_dir {
            Some(d) => hub.with_data_dir(d),
            None => hub,
        }
    }
}

/// The book's last lines: `perplexity 1.0, 67212.6 tokens/sec on cuda:0` and two samples.
pub fn report(s: &SeqTrainSummary) {
    println!(
        "perplexity {:.1}, {:.1} tokens/sec on cpu ({} threads)",
        s.perplexity,
        s.tokens_per_sec,
        d2l::tensor::num_threads()
    );
    for sample in &s.samples {
        println!("{}", sample.text);
    }
}
