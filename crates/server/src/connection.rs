//! A connection generic over its stream, so plain TCP, TLS and in-memory
//! test streams share one code path. STARTTLS/STLS replaces the plain
//! stream by a TLS stream and drops every byte read before the handshake
//! (CVE-2011-0411: no plaintext command may survive into the TLS session).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

pub enum Stream<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    /// Only while a handshake is in progress, or after it failed.
    Closed,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Closed => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
}

/// What [`Connection::read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line including its terminator (`\n`, usually `\r\n`).
    Line(Vec<u8>),
    /// The line was longer than allowed; it was read and thrown away up to
    /// its end, so the session can answer and go on.
    TooLong,
    /// The peer closed the connection (a partial last line is dropped).
    Eof,
}

pub struct Connection<S> {
    stream: Stream<S>,
    buf: Vec<u8>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// How long one write may wait for a client that does not read; a
    /// stalled client must not hold a session (and its locks) forever.
    pub write_timeout: std::time::Duration,
}

const DEFAULT_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Room made for one read while waiting for commands: what an idle
/// connection holds.
const READ_CHUNK: usize = 8192;
/// Room made for one read of message content (SMTP DATA, BDAT): fewer
/// `recv` calls for a large message.
const BULK_CHUNK: usize = 64 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S, peer: SocketAddr, local: SocketAddr) -> Connection<S> {
        Connection {
            stream: Stream::Plain(stream),
            buf: Vec::new(),
            peer,
            local,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
        }
    }

    pub fn from_tls(stream: TlsStream<S>, peer: SocketAddr, local: SocketAddr) -> Connection<S> {
        Connection {
            stream: Stream::Tls(Box::new(stream)),
            buf: Vec::new(),
            peer,
            local,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// TLS protocol version and cipher suite, for logs and Received headers.
    pub fn tls_info(&self) -> Option<(String, String)> {
        match &self.stream {
            Stream::Tls(s) => {
                let (_, c) = s.get_ref();
                Some((
                    c.protocol_version()
                        .map(|v| format!("{v:?}"))
                        .unwrap_or_default(),
                    c.negotiated_cipher_suite()
                        .map(|s| format!("{:?}", s.suite()))
                        .unwrap_or_default(),
                ))
            }
            _ => None,
        }
    }

    /// Whether a whole line is already buffered, so the next `read_line`
    /// will not wait. Sessions write their pending replies before any read
    /// that may wait: otherwise a client that pipelines without reading
    /// would pile replies up in memory instead of meeting TCP backpressure.
    pub fn has_complete_line(&self) -> bool {
        self.buf.contains(&b'\n')
    }

    /// Reads one line of at most `max` bytes (terminator included).
    pub async fn read_line(&mut self, max: usize) -> io::Result<Line> {
        let mut scanned = 0;
        let mut discarding = false;
        loop {
            if let Some(pos) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos + 1;
                let line: Vec<u8> = self.buf.drain(..end).collect();
                if discarding || line.len() > max {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Line(line));
            }
            if self.buf.len() > max {
                // Throw away what we have; keep looking for the line's end.
                discarding = true;
                self.buf.clear();
            }
            scanned = self.buf.len();
            if self.fill(READ_CHUNK).await? == 0 {
                self.buf.clear();
                return Ok(Line::Eof);
            }
        }
    }

    /// Reads into the buffer's spare room (at least `chunk` bytes of it).
    /// Cancel-safe: if the future is dropped (a `select!` with a timer or
    /// a change feed, e.g. IMAP IDLE), nothing read is lost and the buffer
    /// is unchanged.
    async fn fill(&mut self, chunk: usize) -> io::Result<usize> {
        // An idle connection keeps no large buffer from an earlier burst.
        if self.buf.is_empty() && self.buf.capacity() > 2 * chunk {
            self.buf = Vec::new();
        }
        self.buf.reserve(chunk);
        self.stream.read_buf(&mut self.buf).await
    }
    /// Whether received bytes are waiting to be consumed.
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Bytes received and not yet consumed; reads more when there are none.
    /// An empty slice means the peer closed the connection.
    pub async fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.buf.is_empty() {
            self.fill(READ_CHUNK).await?;
        }
        Ok(&self.buf)
    }

    /// [`Connection::fill_buf`] for message content: reads in larger
    /// chunks (the buffer shrinks again at the next wait for a command).
    pub async fn fill_buf_bulk(&mut self) -> io::Result<&[u8]> {
        if self.buf.is_empty() {
            self.fill(BULK_CHUNK).await?;
        }
        Ok(&self.buf)
    }

    /// Marks `n` bytes of [`Connection::fill_buf`] as consumed.
    pub fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }

    /// Reads exactly `n` bytes (a BDAT chunk, RFC 3030), appending them to
    /// `out` only while `out` stays within `keep` bytes; the rest is read
    /// and dropped. Returns false if the peer closed the connection first.
    pub async fn read_exact_into(
        &mut self,
        mut n: u64,
        out: &mut Vec<u8>,
        keep: usize,
    ) -> io::Result<bool> {
        while n > 0 {
            let buf = self.fill_buf_bulk().await?;
            if buf.is_empty() {
                return Ok(false);
            }
            let take = buf.len().min(n.min(usize::MAX as u64) as usize);
            if out.len() + take <= keep {
                out.extend_from_slice(&buf[..take]);
            }
            self.consume(take);
            n -= take as u64;
        }
        Ok(true)
    }

    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match tokio::time::timeout(self.write_timeout, self.stream.write_all(data)).await {
            Ok(r) => r,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        self.stream.flush().await
    }

    pub async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Upgrades to TLS (STARTTLS, STLS). Every byte the client sent before
    /// the handshake and we have not consumed is discarded.
    pub async fn start_tls(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        self.buf.clear();
        match std::mem::replace(&mut self.stream, Stream::Closed) {
            Stream::Plain(s) => {
                let tls = acceptor.accept(s).await?;
                self.stream = Stream::Tls(Box::new(tls));
                Ok(())
            }
            other => {
                self.stream = other;
                Err(io::Error::other("TLS already active"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Connection<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (a, b) = tokio::io::duplex(1 << 16);
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        (Connection::new(a, addr, addr), b)
    }

    #[tokio::test]
    async fn lines_too_long_and_eof() {
        let (mut c, mut peer) = pair();
        peer.write_all(b"ONE\r\nTWO\r\n").await.unwrap();
        peer.write_all(&[b'x'; 100]).await.unwrap();
        peer.write_all(b"\r\nAFTER\r\npartial").await.unwrap();
        drop(peer);
        assert_eq!(
            c.read_line(64).await.unwrap(),
            Line::Line(b"ONE\r\n".to_vec())
        );
        assert!(c.has_complete_line());
        assert_eq!(
            c.read_line(64).await.unwrap(),
            Line::Line(b"TWO\r\n".to_vec())
        );
        assert_eq!(c.read_line(64).await.unwrap(), Line::TooLong);
        assert_eq!(
            c.read_line(64).await.unwrap(),
            Line::Line(b"AFTER\r\n".to_vec())
        );
        assert_eq!(c.read_line(64).await.unwrap(), Line::Eof);
    }

    #[tokio::test]
    async fn bulk_reads_take_large_chunks_and_idle_connections_shrink() {
        let (mut c, mut peer) = pair();
        peer.write_all(&[b'x'; 40_000]).await.unwrap();
        peer.write_all(b"\r\n").await.unwrap();
        let got = c.fill_buf_bulk().await.unwrap().len();
        assert!(got > READ_CHUNK, "one bulk read took {got} bytes");
        c.consume(got);
        let mut total = got;
        while total < 40_002 {
            let n = c.fill_buf_bulk().await.unwrap().len();
            c.consume(n);
            total += n;
        }
        assert_eq!(total, 40_002);
        assert!(c.buf.capacity() >= BULK_CHUNK);
        // Waiting for the next command: the large buffer goes.
        peer.write_all(b"QUIT\r\n").await.unwrap();
        assert_eq!(
            c.read_line(64).await.unwrap(),
            Line::Line(b"QUIT\r\n".to_vec())
        );
        assert!(c.buf.capacity() <= 2 * READ_CHUNK, "{}", c.buf.capacity());
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_does_not_read_times_out_the_write() {
        let (a, _peer) = tokio::io::duplex(16);
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut c = Connection::new(a, addr, addr);
        c.write_timeout = std::time::Duration::from_secs(5);
        let err = c.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn exact_reads_keep_or_drain() {
        let (mut c, mut peer) = pair();
        peer.write_all(b"0123456789NEXT\r\n").await.unwrap();
        let mut out = Vec::new();
        assert!(c.read_exact_into(4, &mut out, 100).await.unwrap());
        assert!(
            c.read_exact_into(6, &mut out, 5).await.unwrap(),
            "over the limit: drained"
        );
        assert_eq!(out, b"0123");
        assert_eq!(
            c.read_line(64).await.unwrap(),
            Line::Line(b"NEXT\r\n".to_vec())
        );
        drop(peer);
        assert!(!c.read_exact_into(1, &mut out, 100).await.unwrap());
    }

    #[tokio::test]
    async fn line_exactly_at_limit_is_accepted() {
        let (mut c, mut peer) = pair();
        peer.write_all(b"12345678\r\n123456789\r\n").await.unwrap();
        assert_eq!(
            c.read_line(10).await.unwrap(),
            Line::Line(b"12345678\r\n".to_vec())
        );
        assert_eq!(c.read_line(10).await.unwrap(), Line::TooLong);
    }
}
