//! Text preprocessing (D2L 8.2, "Text Preprocessing"): reading *The Time Machine*,
//! tokenizing by word or character, the `Vocab` that maps tokens to indices and back, and the
//! character-level corpus of `load_corpus_time_machine`.
//!
//! ```
//! use d2l_data::text::{tokenize, TokenKind, Vocab};
//! let lines = vec!["the time machine".to_string(), "by h g wells".to_string()];
//! let tokens = tokenize(&lines, TokenKind::Word);
//! let vocab = Vocab::new(tokens.iter().flatten(), 0, &[]);
//! assert_eq!(vocab.to_index("the"), 1);
//! assert_eq!(vocab.to_index("unseen"), 0); // <unk>
//! ```

use crate::error::{read_text, DataError, Result};
use std::collections::HashMap;
use std::path::Path;

/// Splits text into lines the way Python's universal-newline `readlines` does
/// (`\n`, `\r\n` and `\r` end a line; a final line break adds no empty line).
fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&text[start..i]);
                start = i + 1;
            }
            b'\r' => {
                lines.push(&text[start..i]);
                if i + 1 < bytes.len() && bytes[i + 1] == b'\n' {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < bytes.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// The book's line cleaning, `re.sub('[^A-Za-z]+', ' ', line).strip().lower()`: every run of
/// non-ASCII-letters becomes one space, the ends are trimmed and letters lowercased.
pub fn clean_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut gap = false;
    for ch in line.chars() {
        if ch.is_ascii_alphabetic() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(ch.to_ascii_lowercase());
        } else {
            gap = true;
        }
    }
    out
}

/// Reads a text file (*The Time Machine*, data hub name `time_machine`) into cleaned lines:
/// one entry per line of the file (empty lines kept as empty strings), see [`clean_line`].
pub fn read_time_machine(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let path = path.as_ref();
    let text = read_text(path)?;
    Ok(split_lines(&text).into_iter().map(clean_line).collect())
}

/// How [`tokenize`] splits a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Words: the line split on whitespace (Python's `line.split()`).
    Word,
    /// Characters: every character of the line, spaces included (Python's `list(line)`).
    Char,
}

/// Splits each line into tokens (the book's `tokenize(lines, token)`).
pub fn tokenize<S: AsRef<str>>(lines: &[S], kind: TokenKind) -> Vec<Vec<String>> {
    lines
        .iter()
        .map(|l| match kind {
            TokenKind::Word => l.as_ref().split_whitespace().map(str::to_string).collect(),
            TokenKind::Char => l.as_ref().chars().map(|c| c.to_string()).collect(),
        })
        .collect()
}

/// The unknown token, always at index 0.
pub const UNK: &str = "<unk>";

/// A vocabulary: tokens ↔ indices (the book's `Vocab`). Index 0 is `<unk>`, then the reserved
/// tokens, then the corpus tokens by descending frequency (ties keep first-seen order), down
/// to the first token rarer than `min_freq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    idx_to_token: Vec<String>,
    token_to_idx: HashMap<String, usize>,
    token_freqs: Vec<(String, usize)>,
}

impl Vocab {
    /// Builds a vocabulary from a flat sequence of tokens (flatten lines first, e.g.
    /// `tokens.iter().flatten()`), a minimum frequency and reserved tokens such as `<pad>`.
    pub fn new<S: AsRef<str>>(
        tokens: impl IntoIterator<Item = S>,
        min_freq: usize,
        reserved_tokens: &[&str],
    ) -> Vocab {
        // collections.Counter keeps first-insertion order; sorted(..., reverse=True) is stable.
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut freqs: Vec<(String, usize)> = Vec::new();
        for t in tokens {
            let t = t.as_ref();
            match index.get(t) {
                Some(&k) => freqs[k].1 += 1,
                None => {
                    index.insert(t.to_string(), freqs.len());
                    freqs.push((t.to_string(), 1));
                }
            }
        }
        freqs.sort_by_key(|f| std::cmp::Reverse(f.1)); // stable: ties keep first-seen order
        let mut idx_to_token: Vec<String> = vec![UNK.to_string()];
        idx_to_token.extend(reserved_tokens.iter().map(|s| s.to_string()));
        let mut token_to_idx: HashMap<String, usize> = HashMap::new();
        for (i, t) in idx_to_token.iter().enumerate() {
            token_to_idx.entry(t.clone()).or_insert(i);
        }
        for (t, f) in &freqs {
            if *f < min_freq {
                break;
            }
            if !token_to_idx.contains_key(t) {
                token_to_idx.insert(t.clone(), idx_to_token.len());
                idx_to_token.push(t.clone());
            }
        }
        Vocab {
            idx_to_token,
            token_to_idx,
            token_freqs: freqs,
        }
    }

    /// The number of tokens, `<unk>` and reserved tokens included.
    pub fn len(&self) -> usize {
        self.idx_to_token.len()
    }

    /// Whether the vocabulary is empty (never: it always holds `<unk>`).
    pub fn is_empty(&self) -> bool {
        self.idx_to_token.is_empty()
    }

    /// The index of `<unk>` (0).
    pub fn unk(&self) -> usize {
        0
    }

    /// The index of a token, or 0 (`<unk>`) for a token not in the vocabulary.
    pub fn to_index(&self, token: &str) -> usize {
        self.token_to_idx.get(token).copied().unwrap_or(0)
    }

    /// The indices of several tokens (unknown ones map to 0).
    pub fn to_indices<S: AsRef<str>>(&self, tokens: &[S]) -> Vec<usize> {
        tokens.iter().map(|t| self.to_index(t.as_ref())).collect()
    }

    /// The token at an index, or `None` past the end.
    pub fn to_token(&self, index: usize) -> Option<&str> {
        self.idx_to_token.get(index).map(String::as_str)
    }

    /// The tokens at several indices; an index past the end is an error.
    pub fn to_tokens(&self, indices: &[usize]) -> Result<Vec<&str>> {
        indices
            .iter()
            .map(|&i| {
                self.to_token(i).ok_or_else(|| {
                    DataError::Invalid(format!(
                        "vocab: index {i} is out of range for a vocabulary of {} tokens",
                        self.len()
                    ))
                })
            })
            .collect()
    }

    /// Every distinct corpus token with its count, most frequent first (ties: first seen
    /// first), including tokens below `min_freq`.
    pub fn token_freqs(&self) -> &[(String, usize)] {
        &self.token_freqs
    }

    /// All tokens in index order.
    pub fn tokens(&self) -> &[String] {
        &self.idx_to_token
    }
}

/// The character-level corpus of a text file (the book's `load_corpus_time_machine`):
/// the index of every character of every cleaned line (no separator between lines), and the
/// vocabulary built from all of them. `max_tokens = Some(n)` keeps the first `n` indices
/// (the book's `max_tokens > 0`); `None` keeps all.
pub fn load_corpus_time_machine(
    path: impl AsRef<Path>,
    max_tokens: Option<usize>,
) -> Result<(Vec<usize>, Vocab)> {
    let lines = read_time_machine(path)?;
    let tokens = tokenize(&lines, TokenKind::Char);
    let vocab = Vocab::new(tokens.iter().flatten(), 0, &[]);
    let mut corpus: Vec<usize> = tokens.iter().flatten().map(|t| vocab.to_index(t)).collect();
    if let Some(n) = max_tokens {
        corpus.truncate(n);
    }
    Ok((corpus, vocab))
}
