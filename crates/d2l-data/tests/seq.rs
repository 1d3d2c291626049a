//! D2L 8.3.4's two ways of reading a long sequence, on the book's toy corpus 0..35 with
//! batch 2 and 5 steps: the invariants of random sampling and of sequential partitioning,
//! `SeqDataLoader`, and `max_tokens` truncation of *The Time Machine*.

use d2l_data::hub::DataHub;
use d2l_data::seq::{
    load_data_time_machine, random_batch_starts, seq_data_iter_random, seq_data_iter_sequential,
    sequential_batch_starts, SeqDataLoader, DEFAULT_MAX_TOKENS,
};
use d2l_data::text::Vocab;
use d2l_tensor::Generator;
use std::collections::HashSet;
use std::path::PathBuf;

fn rows(t: &d2l_tensor::Tensor) -> Vec<Vec<i64>> {
    let v = t.to_vec::<i64>();
    v.chunks(t.shape()[1]).map(|c| c.to_vec()).collect()
}

#[test]
fn random_sampling_invariants() {
    let corpus: Vec<usize> = (0..35).collect();
    let (b, n) = (2, 5);
    for seed in 0..200 {
        let mut g = Generator::new(seed);
        let batches = seq_data_iter_random(&corpus, b, n, &mut g).unwrap();
        let mut starts = Vec::new();
        for (x, y) in &batches {
            assert_eq!(x.shape(), &[b, n]);
            assert_eq!(y.shape(), &[b, n]);
            for (xr, yr) in rows(x).iter().zip(rows(y)) {
                // Each row is a window of consecutive tokens; Y is X shifted by one.
                for k in 0..n {
                    assert_eq!(xr[k], xr[0] + k as i64);
                    assert_eq!(yr[k], xr[k] + 1);
                }
                starts.push(xr[0] as usize);
            }
        }
        // The windows start at offset + k·n for one offset in 0..n and never overlap.
        let offset = starts.iter().min().unwrap() % n;
        assert!(offset < n, "offset {offset}");
        let set: HashSet<usize> = starts.iter().copied().collect();
        assert_eq!(set.len(), starts.len(), "a window was used twice");
        for &s in &starts {
            assert_eq!(s % n, offset, "windows are on one grid");
        }
        // (35 - offset - 1) / 5 windows, of which whole batches are used.
        let subseqs = (35 - offset - 1) / n;
        assert_eq!(batches.len(), subseqs / b);
        assert_eq!(starts.len(), subseqs / b * b);
        let mut sorted = starts.clone();
        sorted.sort_unstable();
        for w in sorted.windows(2) {
            assert!(w[1] >= w[0] + n, "windows overlap: {w:?}");
        }
    }
}

#[test]
fn random_sampling_uses_every_offset_and_shuffles() {
    let mut offsets = HashSet::new();
    let mut orders = HashSet::new();
    for seed in 0..300 {
        let s = random_batch_starts(35, 2, 5, &mut Generator::new(seed)).unwrap();
        let flat: Vec<usize> = s.concat();
        offsets.insert(flat.iter().min().unwrap() % 5);
        orders.insert(flat);
    }
    assert_eq!(offsets.len(), 5, "offsets 0..=4 all occur: {offsets:?}");
    assert!(orders.len() > 20, "the windows are shuffled");
}

#[test]
fn sequential_partitioning_invariants() {
    let corpus: Vec<usize> = (0..35).collect();
    let (b, n) = (2, 5);
    let mut offsets = HashSet::new();
    for seed in 0..300 {
        let batches = seq_data_iter_sequential(&corpus, b, n, &mut Generator::new(seed)).unwrap();
        assert!(!batches.is_empty());
        let first = rows(&batches[0].0);
        let offset = first[0][0] as usize;
        assert!(offset <= n, "offset {offset} in 0..=num_steps");
        offsets.insert(offset);
        let num_tokens = (35 - offset - 1) / b * b;
        assert_eq!(batches.len(), num_tokens / b / n);
        for (i, (x, y)) in batches.iter().enumerate() {
            let (xr, yr) = (rows(x), rows(y));
            for r in 0..b {
                for k in 0..n {
                    assert_eq!(yr[r][k], xr[r][k] + 1, "Y is X shifted by one");
                    assert_eq!(xr[r][k], xr[r][0] + k as i64);
                }
                // Row r starts the r-th of b parallel streams.
                assert_eq!(xr[r][0] as usize, offset + r * (num_tokens / b) + i * n);
                if i + 1 < batches.len() {
                    // Batch i + 1 row r continues batch i row r.
                    let next = rows(&batches[i + 1].0);
                    assert_eq!(next[r][0], xr[r][n - 1] + 1);
                }
            }
        }
    }
    assert_eq!(offsets.len(), 6, "offsets 0..=5 all occur: {offsets:?}");
}

#[test]
fn the_books_toy_example_shapes() {
    // D2L 8.3.4: range(35), batch 2, 5 steps gives 3 sequential batches at offset 0.
    let s = sequential_batch_starts(35, 2, 5, &mut Generator::new(1)).unwrap();
    let offset = s[0][0];
    let stream = (35 - offset - 1) / 2;
    assert_eq!(s.len(), stream / 5);
    assert_eq!(s[0], vec![offset, offset + stream]);
}

#[test]
fn loader_draws_a_new_epoch_each_time_and_checks_sizes() {
    let text = "the time traveller for so it will be convenient to speak of him was expounding";
    let tokens: Vec<String> = text.chars().map(|c| c.to_string()).collect();
    let vocab = Vocab::new(tokens.iter(), 0, &[]);
    let corpus: Vec<usize> = tokens.iter().map(|t| vocab.to_index(t)).collect();
    let mut seq = SeqDataLoader::new(corpus.clone(), vocab.clone(), 3, 4, false, 0).unwrap();
    let e1: Vec<_> = seq.iter().map(|(x, _)| x.to_vec::<i64>()).collect();
    let it = seq.iter();
    assert_eq!(it.len(), it.size_hint().0);
    let mut differs = false;
    for _ in 0..10 {
        let e: Vec<_> = seq.iter().map(|(x, _)| x.to_vec::<i64>()).collect();
        differs |= e != e1;
    }
    assert!(differs, "the offset is redrawn every epoch");
    let mut rnd = SeqDataLoader::new(corpus.clone(), vocab.clone(), 3, 4, true, 0).unwrap();
    assert!(rnd.use_random_iter());
    assert!(rnd.iter().count() >= 1);
    let err = SeqDataLoader::new(corpus.clone(), vocab.clone(), 32, 35, false, 0).unwrap_err();
    assert!(err.to_string().contains("too short"), "{err}");
    assert!(SeqDataLoader::new(corpus.clone(), vocab.clone(), 0, 4, false, 0).is_err());
    assert!(SeqDataLoader::new(vec![999; 100], vocab, 2, 4, false, 0).is_err());
}

fn data_dir() -> Option<PathBuf> {
    d2l_testkit::shared_data("timemachine/timemachine.txt")
}

#[test]
fn time_machine_with_the_books_max_tokens() {
    let Some(dir) = data_dir() else {
        eprintln!("skipping: ../shared/data/timemachine/timemachine.txt is not present");
        return;
    };
    let hub = DataHub::from_env().with_data_dir(&dir).quiet();
    let (mut loader, vocab) =
        load_data_time_machine(&hub, 32, 35, false, Some(DEFAULT_MAX_TOKENS), 0).unwrap();
    assert_eq!(vocab.len(), 28);
    assert_eq!(loader.corpus().len(), 10_000);
    // (10000 - offset - 1) // 32 * 32 tokens in 32 streams of ≤ 312, so 8 batches of 35.
    let n = loader.iter().count();
    assert_eq!(n, 8);
    let (all, _) = load_data_time_machine(&hub, 32, 35, true, None, 0).unwrap();
    assert_eq!(all.corpus().len(), 170_580);
    assert_eq!(&all.corpus()[..10_000], loader.corpus());
}
