//! The 64-byte block framing that MD5 and SHA-256 share (Merkle–Damgård): partial blocks
//! are buffered, bytes counted, and the final padding is a 1 bit, zeros to 56 mod 64
//! bytes, then the message length in bits.

/// A partial block and the byte count of one streaming hash.
pub(crate) struct Blocks {
    block: [u8; 64],
    filled: usize,
    total: u64,
}

impl Blocks {
    /// Nothing fed yet.
    pub(crate) fn new() -> Blocks {
        Blocks {
            block: [0; 64],
            filled: 0,
            total: 0,
        }
    }

    /// Feeds `data`, calling `compress` on every complete 64-byte block in order.
    pub(crate) fn update(&mut self, mut data: &[u8], mut compress: impl FnMut(&[u8])) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.filled > 0 {
            let take = (64 - self.filled).min(data.len());
            self.block[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled < 64 {
                return;
            }
            compress(&self.block);
            self.filled = 0;
        }
        let mut chunks = data.chunks_exact(64);
        for c in &mut chunks {
            compress(c);
        }
        let rest = chunks.remainder();
        self.block[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    /// Feeds the final padding, the bit length big-endian (SHA-256) or little-endian
    /// (MD5), so that the last block is compressed.
    pub(crate) fn finish(mut self, big_endian: bool, compress: impl FnMut(&[u8])) {
        let bits = self.total.wrapping_mul(8);
        let used = (self.filled + 1) % 64;
        let zeros = if used <= 56 { 56 - used } else { 120 - used };
        let mut pad = vec![0x80u8];
        pad.resize(1 + zeros, 0);
        pad.extend_from_slice(&if big_endian {
            bits.to_be_bytes()
        } else {
            bits.to_le_bytes()
        });
        self.update(&pad, compress);
        debug_assert_eq!(self.filled, 0);
    }
}

/// Feeds a file's bytes to `feed` in 1 MiB pieces (what the hashes of a file share).
pub(crate) fn read_file_chunks(
    path: &std::path::Path,
    mut feed: impl FnMut(&[u8]),
) -> d2l_data::Result<()> {
    use std::io::Read;
    let io_err = |source| d2l_data::DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io_err)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => feed(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
    }
}
