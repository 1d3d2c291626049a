//! Text preprocessing (D2L 8.2) on *The Time Machine*: the book's printed numbers (3221
//! lines, the word-vocabulary head, a character corpus of 170580 tokens over 28 symbols),
//! and `Vocab` semantics on small inputs.

use d2l_data::text::{
    clean_line, load_corpus_time_machine, read_time_machine, tokenize, TokenKind, Vocab,
};
use d2l_data::DataError;
use std::path::PathBuf;

fn time_machine() -> Option<PathBuf> {
    d2l_testkit::shared_path_or_skip("timemachine/timemachine.txt")
}

#[test]
fn time_machine_matches_the_book() {
    let Some(path) = time_machine() else { return };
    let lines = read_time_machine(&path).unwrap();
    assert_eq!(lines.len(), 3221, "# text lines: 3221");
    assert_eq!(lines[0], "the time machine by h g wells");
    assert_eq!(
        lines[10],
        "twinkled and his usually pale face was flushed and animated the"
    );

    let tokens = tokenize(&lines, TokenKind::Word);
    assert_eq!(
        tokens[0],
        vec!["the", "time", "machine", "by", "h", "g", "wells"]
    );
    assert!(tokens[1].is_empty());
    let vocab = Vocab::new(tokens.iter().flatten(), 0, &[]);
    let head: Vec<&str> = (0..10).map(|i| vocab.to_token(i).unwrap()).collect();
    assert_eq!(
        head,
        vec!["<unk>", "the", "i", "and", "of", "a", "to", "was", "in", "that"]
    );
    // the book: indices of line 0 = [1, 19, 50, 40, 2183, 2184, 400]
    assert_eq!(
        vocab.to_indices(&tokens[0]),
        vec![1, 19, 50, 40, 2183, 2184, 400]
    );
    assert_eq!(
        vocab.to_indices(&tokens[10]),
        vec![2186, 3, 25, 1044, 362, 113, 7, 1421, 3, 1045, 1]
    );

    let (corpus, cv) = load_corpus_time_machine(&path, None).unwrap();
    assert_eq!(
        (corpus.len(), cv.len()),
        (170580, 28),
        "the book: (170580, 28)"
    );
    assert_eq!(cv.to_token(0), Some("<unk>"));
    assert_eq!(cv.to_token(1), Some(" "));
    assert_eq!(cv.to_token(2), Some("e"));
    assert_eq!(cv.to_tokens(&corpus[..3]).unwrap(), vec!["t", "h", "e"]);
    let (short, sv) = load_corpus_time_machine(&path, Some(10000)).unwrap();
    assert_eq!(short.len(), 10000);
    assert_eq!(sv, cv, "the vocabulary is built from the whole text");
    assert_eq!(short[..], corpus[..10000]);
}

#[test]
fn cleaning_follows_the_regex() {
    assert_eq!(
        clean_line("  The Time-Machine, by H. G. Wells [1898]\n"),
        "the time machine by h g wells"
    );
    assert_eq!(clean_line("I'm ... OK!"), "i m ok");
    assert_eq!(clean_line("café naïve"), "caf na ve");
    assert_eq!(clean_line("1234 ,,"), "");
}

#[test]
fn vocab_order_min_freq_and_reserved() {
    // counts: b 3, a 2, c 2, d 1; ties keep first-seen order (a before c)
    let toks = ["b", "a", "c", "b", "a", "c", "b", "d"];
    let v = Vocab::new(toks, 2, &["<pad>", "<bos>"]);
    assert_eq!(v.tokens(), &["<unk>", "<pad>", "<bos>", "b", "a", "c"]);
    assert_eq!(v.len(), 6);
    assert_eq!(v.unk(), 0);
    assert_eq!(v.to_index("a"), 4);
    assert_eq!(v.to_index("d"), 0, "below min_freq → <unk>");
    assert_eq!(v.to_index("zzz"), 0);
    assert_eq!(v.to_indices(&["c", "<pad>", "q"]), vec![5, 1, 0]);
    assert_eq!(v.to_token(5), Some("c"));
    assert_eq!(v.to_token(6), None);
    assert!(matches!(v.to_tokens(&[1, 99]), Err(DataError::Invalid(_))));
    let f: Vec<(&str, usize)> = v
        .token_freqs()
        .iter()
        .map(|(t, c)| (t.as_str(), *c))
        .collect();
    assert_eq!(f, vec![("b", 3), ("a", 2), ("c", 2), ("d", 1)]);
    // a reserved token that also occurs in the corpus keeps its reserved index
    let v = Vocab::new(["x", "<pad>", "<pad>"], 0, &["<pad>"]);
    assert_eq!(v.tokens(), &["<unk>", "<pad>", "x"]);
    let empty = Vocab::new(Vec::<String>::new(), 0, &[]);
    assert_eq!(empty.len(), 1);
}

#[test]
fn char_tokens_and_line_endings() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.txt");
    std::fs::write(&p, "Ab c\r\nD!\rlast").unwrap();
    let lines = read_time_machine(&p).unwrap();
    assert_eq!(lines, vec!["ab c", "d", "last"]);
    let chars = tokenize(&lines, TokenKind::Char);
    assert_eq!(chars[0], vec!["a", "b", " ", "c"]);
    let (corpus, vocab) = load_corpus_time_machine(&p, None).unwrap();
    assert_eq!(corpus.len(), 4 + 1 + 4);
    assert_eq!(vocab.to_tokens(&corpus[..4]).unwrap().concat(), "ab c");
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, [0x61, 0xff, 0x62]).unwrap();
    assert!(matches!(
        read_time_machine(&bad),
        Err(DataError::Format { .. })
    ));
    assert!(matches!(
        read_time_machine(dir.path().join("none.txt")),
        Err(DataError::Io { .. })
    ));
}
