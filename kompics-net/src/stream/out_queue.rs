//! [`OutQueue`]: a connection's unflushed output, written with vectored writes.
//!
//! Writes are kept as the `Vec`s they arrived in (no copy for large ones), except that small
//! writes are appended to the last chunk, so a pipelined client's many short replies go out in
//! few, large `writev` calls and do not each hold an allocation.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

/// A write no larger than this is copied onto the end of the last chunk (if that stays within
/// `CHUNK_TARGET`) rather than queued as a chunk of its own.
const SMALL_WRITE: usize = 4 * 1024;
/// How large the last chunk may grow by appending small writes.
const CHUNK_TARGET: usize = 64 * 1024;
/// Chunks handed to one `writev` at most.
const IOV_MAX: usize = 64;

/// How a [`OutQueue::write_to`] call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Everything was written.
    Empty,
    /// The writer would block; bytes remain.
    Blocked,
    /// The byte budget was used up; bytes remain and the writer may take more.
    Budget,
}

/// Bytes waiting to be written, in order.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes of the front chunk already written.
    head: usize,
    /// Bytes queued and not yet written.
    len: usize,
}

impl OutQueue {
    /// Bytes queued and not yet written.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `data` after everything queued.
    pub(crate) fn push(&mut self, data: Vec<u8>) {
        if data.is_empty() {
            return;
        }
        self.len += data.len();
        if data.len() <= SMALL_WRITE {
            if let Some(back) = self.chunks.back_mut() {
                if back.len() + data.len() <= CHUNK_TARGET {
                    back.extend_from_slice(&data);
                    return;
                }
            }
        }
        self.chunks.push_back(data);
    }

    /// Writes queued bytes to `w` until the queue is empty, `w` would block, or `budget` bytes
    /// were written. Other errors are returned (the queue then holds what was not written).
    pub(crate) fn write_to(&mut self, w: &mut impl Write, budget: usize) -> io::Result<Flushed> {
        let mut written = 0;
        while !self.is_empty() {
            if written >= budget {
                return Ok(Flushed::Budget);
            }
            let mut slices = [IoSlice::new(&[]); IOV_MAX];
            let mut count = 0;
            for (i, chunk) in self.chunks.iter().take(IOV_MAX).enumerate() {
                let start = if i == 0 { self.head } else { 0 };
                slices[i] = IoSlice::new(&chunk[start..]);
                count += 1;
            }
            match w.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    self.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Release a large buffer once drained rather than keep it for the connection's life.
        if self.chunks.capacity() > IOV_MAX {
            self.chunks = VecDeque::new();
        }
        Ok(Flushed::Empty)
    }

    /// Drops the first `n` queued bytes (written).
    fn consume(&mut self, mut n: usize) {
        debug_assert!(n <= self.len);
        self.len -= n;
        while n > 0 {
            let front = self.chunks.front().expect("consumed bytes were queued");
            let left = front.len() - self.head;
            if n < left {
                self.head += n;
                return;
            }
            n -= left;
            self.chunks.pop_front();
            self.head = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `per_call` bytes per call and blocks after `limit` bytes.
    struct Trickle {
        got: Vec<u8>,
        per_call: usize,
        limit: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let room = self.limit.saturating_sub(self.got.len()).min(self.per_call);
            if room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(room - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                if n == room {
                    break;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn bytes_come_out_in_order_across_partial_writes_and_blocking() {
        let mut q = OutQueue::default();
        let mut expected = Vec::new();
        for (i, len) in [5, 3000, 100_000, 1, 70_000, 4096, 10].into_iter().enumerate() {
            let data = pattern(len, i as u8);
            expected.extend_from_slice(&data);
            q.push(data);
        }
        q.push(Vec::new());
        assert_eq!(q.len(), expected.len());
        let mut w = Trickle { got: Vec::new(), per_call: 7_777, limit: 50_000 };
        assert_eq!(q.write_to(&mut w, usize::MAX).unwrap(), Flushed::Blocked);
        assert_eq!(w.got.len(), 50_000);
        assert_eq!(q.len(), expected.len() - 50_000);
        w.limit = usize::MAX;
        assert_eq!(q.write_to(&mut w, 10_000).unwrap(), Flushed::Budget);
        assert_eq!(q.write_to(&mut w, usize::MAX).unwrap(), Flushed::Empty);
        assert!(q.is_empty());
        assert_eq!(w.got, expected);
    }

    #[test]
    fn small_writes_share_a_chunk() {
        let mut q = OutQueue::default();
        for _ in 0..1000 {
            q.push(b"+OK\r\n".to_vec());
        }
        assert_eq!(q.chunks.len(), 1);
        assert_eq!(q.len(), 5000);
    }
}
