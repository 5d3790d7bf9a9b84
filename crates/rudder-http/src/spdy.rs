//! The client side of SPDY/3.1 framing, as much as Kubernetes' streaming
//! protocols need to talk to a node's streaming server: open streams with
//! headers, send data and half-close, read data frames, answer pings.
//!
//! Header blocks are zlib streams with the SPDY/3 dictionary. We only ever
//! send a few short headers, so ours are written as stored (uncompressed)
//! deflate blocks behind a zlib header that names the dictionary: any
//! inflater reads them (checked against containerd's Go reader). The peer's header blocks (SYN_REPLY) carry nothing
//! we need and are skipped undecoded.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Adler-32 of the SPDY/3 header dictionary (1423 bytes, draft-mbelshe-
/// httpbis-spdy-00 section 2.6.10.1), which the zlib header must name.
const DICTIONARY_ADLER32: u32 = 0xe3c6_a7c2;

const VERSION: u32 = 3;
const SYN_STREAM: u16 = 1;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;

/// A frame from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream: u32,
        fin: bool,
        data: Vec<u8>,
    },
    Ping(u32),
    GoAway,
    /// SYN_REPLY, RST_STREAM, SETTINGS, WINDOW_UPDATE, HEADERS …
    OtherControl(u16),
}

#[derive(Debug)]
pub struct Reader<R> {
    io: R,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(io: R) -> Self {
        Reader { io }
    }

    /// The next frame; `None` when the connection ends.
    pub async fn next(&mut self) -> std::io::Result<Option<Frame>> {
        let mut head = [0u8; 8];
        match self.io.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let first = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let flags = head[4];
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        let mut payload = vec![0u8; len];
        self.io.read_exact(&mut payload).await?;
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream: first & 0x7fff_ffff,
                fin: flags & FLAG_FIN != 0,
                data: payload,
            }));
        }
        Ok(Some(match (first & 0xffff) as u16 {
            PING if payload.len() >= 4 => Frame::Ping(u32::from_be_bytes([
                payload[0], payload[1], payload[2], payload[3],
            ])),
            GOAWAY => Frame::GoAway,
            other => Frame::OtherControl(other),
        }))
    }
}

#[derive(Debug)]
pub struct Writer<W> {
    io: W,
    /// Whether the zlib header has been sent: the header blocks of all
    /// frames form one zlib stream.
    zlib_started: bool,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(io: W) -> Self {
        Writer {
            io,
            zlib_started: false,
        }
    }

    /// Opens stream `id` (odd, increasing) with lower-case `headers`.
    pub async fn open(&mut self, id: u32, headers: &[(&str, &str)]) -> std::io::Result<()> {
        let mut block = Vec::new();
        block.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (name, value) in headers {
            for s in [name, value] {
                block.extend_from_slice(&(s.len() as u32).to_be_bytes());
                block.extend_from_slice(s.as_bytes());
            }
        }
        let mut body = Vec::with_capacity(block.len() + 20);
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&0u32.to_be_bytes()); // associated stream
        body.extend_from_slice(&[0, 0]); // priority, slot
        if !self.zlib_started {
            // CMF 0x78 (deflate, 32 KiB window), FLG 0x20 (FDICT); the
            // pair is a multiple of 31 as RFC 1950 requires.
            body.extend_from_slice(&[0x78, 0x20]);
            body.extend_from_slice(&DICTIONARY_ADLER32.to_be_bytes());
            self.zlib_started = true;
        }
        let len = u16::try_from(block.len())
            .map_err(|_| std::io::Error::other("SPDY headers longer than 64 KiB"))?;
        body.push(0); // a stored block, not the last
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(&(!len).to_le_bytes());
        body.extend_from_slice(&block);
        // An empty stored block (a sync flush): inflaters such as Go's hand
        // out a stored block's bytes only when the next block begins.
        body.extend_from_slice(&[0, 0, 0, 0xff, 0xff]);
        self.control(SYN_STREAM, 0, &body).await
    }

    /// Sends `data` on stream `id`; `fin` half-closes it.
    pub async fn data(&mut self, id: u32, data: &[u8], fin: bool) -> std::io::Result<()> {
        for (i, chunk) in data.chunks(0xff_ffff).enumerate() {
            let last = (i + 1) * 0xff_ffff >= data.len();
            self.frame(id & 0x7fff_ffff, fin_flag(fin && last), chunk)
                .await?;
        }
        if data.is_empty() {
            self.frame(id & 0x7fff_ffff, fin_flag(fin), &[]).await?;
        }
        Ok(())
    }

    /// Echoes a ping from the server.
    pub async fn pong(&mut self, id: u32) -> std::io::Result<()> {
        self.control(PING, 0, &id.to_be_bytes()).await
    }

    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.io.shutdown().await
    }

    async fn control(&mut self, kind: u16, flags: u8, body: &[u8]) -> std::io::Result<()> {
        self.frame(0x8000_0000 | (VERSION << 16) | u32::from(kind), flags, body)
            .await
    }

    async fn frame(&mut self, first: u32, flags: u8, body: &[u8]) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(8 + body.len());
        out.extend_from_slice(&first.to_be_bytes());
        out.push(flags);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(body);
        self.io.write_all(&out).await?;
        self.io.flush().await
    }
}

fn fin_flag(fin: bool) -> u8 {
    if fin { FLAG_FIN } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_laid_out_as_spdy_3() {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        w.open(1, &[("streamtype", "error")]).await.unwrap();
        w.data(1, b"hi", true).await.unwrap();
        w.pong(2).await.unwrap();
        // SYN_STREAM: control bit, version 3, type 1.
        assert_eq!(&out[..4], &[0x80, 0x03, 0x00, 0x01]);
        let len = u32::from_be_bytes([0, out[5], out[6], out[7]]) as usize;
        let syn = &out[8..8 + len];
        assert_eq!(&syn[..4], &1u32.to_be_bytes());
        // The zlib header naming the dictionary, then a stored block.
        assert_eq!(&syn[10..16], &[0x78, 0x20, 0xe3, 0xc6, 0xa7, 0xc2]);
        let (block, flush) = syn[21..].split_at(syn.len() - 21 - 5);
        assert_eq!(u16::from_le_bytes([syn[17], syn[18]]) as usize, block.len());
        assert_eq!(flush, &[0, 0, 0, 0xff, 0xff]);
        assert_eq!(&block[..4], &1u32.to_be_bytes());
        assert_eq!(&block[8..18], b"streamtype");
        // The data frame, with FIN.
        let data = &out[8 + len..];
        assert_eq!(&data[..8], &[0, 0, 0, 1, FLAG_FIN, 0, 0, 2]);
        assert_eq!(&data[8..10], b"hi");
        let ping = &data[10..];
        assert_eq!(ping, &[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 2]);

        // What a server sends back reads as frames.
        let mut wire = vec![0x80, 0x03, 0x00, 0x02, 0, 0, 0, 2, 9, 9];
        wire.extend_from_slice(&[0, 0, 0, 3, 1, 0, 0, 1, b'x']);
        wire.extend_from_slice(&[0x80, 0x03, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 8]);
        let mut r = Reader::new(&wire[..]);
        assert_eq!(r.next().await.unwrap(), Some(Frame::OtherControl(2)));
        assert_eq!(
            r.next().await.unwrap(),
            Some(Frame::Data {
                stream: 3,
                fin: true,
                data: b"x".to_vec()
            })
        );
        assert_eq!(r.next().await.unwrap(), Some(Frame::Ping(8)));
        assert_eq!(r.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_second_header_block_continues_the_zlib_stream() {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        w.open(1, &[("a", "b")]).await.unwrap();
        let first = out.len();
        let mut w = Writer {
            io: Vec::new(),
            zlib_started: true,
        };
        w.open(3, &[("a", "b")]).await.unwrap();
        assert_eq!(w.io.len(), first - 6);
    }
}
