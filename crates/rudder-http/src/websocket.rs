//! The server side of WebSocket (RFC 6455), as much as Kubernetes'
//! streaming protocols use: the handshake's accept key and offered
//! subprotocols, reading the client's (masked) messages and writing
//! unmasked ones.

use base64::Engine;
use http::{HeaderMap, header};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest message a client may send. kubectl sends stdin in 32 KiB
/// pieces and SPDY frames of at most 16 MiB.
const MAX_MESSAGE: usize = 16 << 20;

/// The `Sec-WebSocket-Accept` answer to a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{GUID}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// The subprotocols a WebSocket handshake offers, in order: every
/// `Sec-WebSocket-Protocol` header, split at commas.
pub fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether the headers ask for a WebSocket upgrade.
pub fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
        && headers.contains_key(header::SEC_WEBSOCKET_KEY)
}

/// A message from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    Binary(Vec<u8>),
    Text(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    /// The close code the client sent, if any.
    Close(Option<u16>),
}

/// Reads the client's messages, joining fragmented ones.
#[derive(Debug)]
pub struct Reader<R> {
    io: R,
    /// A fragmented message being read: its opcode and data so far.
    partial: Option<(u8, Vec<u8>)>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(io: R) -> Self {
        Reader { io, partial: None }
    }

    /// The next message; `None` when the connection ends.
    pub async fn next(&mut self) -> std::io::Result<Option<Message>> {
        loop {
            let message = &mut self.partial;
            let mut head = [0u8; 2];
            match self.io.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
            let fin = head[0] & 0x80 != 0;
            let opcode = head[0] & 0x0f;
            let masked = head[1] & 0x80 != 0;
            let len = match head[1] & 0x7f {
                126 => u64::from(self.io.read_u16().await?),
                127 => self.io.read_u64().await?,
                n => u64::from(n),
            };
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| {
                    l <= MAX_MESSAGE.saturating_sub(message.as_ref().map_or(0, |m| m.1.len()))
                })
                .ok_or_else(|| invalid("a WebSocket message larger than 16 MiB"))?;
            let mut mask = [0u8; 4];
            if masked {
                self.io.read_exact(&mut mask).await?;
            }
            let mut payload = vec![0u8; len];
            self.io.read_exact(&mut payload).await?;
            if masked {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= mask[i % 4];
                }
            }
            match opcode {
                // Control frames may arrive between the fragments of a message.
                0x8 => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return Ok(Some(Message::Close(code)));
                }
                0x9 => return Ok(Some(Message::Ping(payload))),
                0xa => return Ok(Some(Message::Pong)),
                0x0 => match message.as_mut() {
                    Some((_, data)) => data.extend_from_slice(&payload),
                    None => return Err(invalid("a WebSocket continuation without a message")),
                },
                0x1 | 0x2 if message.is_none() => *message = Some((opcode, payload)),
                0x1 | 0x2 => return Err(invalid("a WebSocket message inside another")),
                other => return Err(invalid(&format!("WebSocket opcode {other}"))),
            }
            if fin && let Some((opcode, data)) = message.take() {
                return Ok(Some(if opcode == 0x1 {
                    Message::Text(data)
                } else {
                    Message::Binary(data)
                }));
            }
        }
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// Writes messages to the client (servers do not mask).
#[derive(Debug)]
pub struct Writer<W> {
    io: W,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(io: W) -> Self {
        Writer { io }
    }

    pub async fn binary(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        self.frame(0x2, parts).await
    }

    pub async fn pong(&mut self, payload: &[u8]) -> std::io::Result<()> {
        self.frame(0xa, &[payload]).await
    }

    /// Sends a close frame with `code` and shuts the connection down.
    pub async fn close(&mut self, code: u16) -> std::io::Result<()> {
        self.frame(0x8, &[&code.to_be_bytes()]).await?;
        self.io.shutdown().await
    }

    async fn frame(&mut self, opcode: u8, parts: &[&[u8]]) -> std::io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut out = Vec::with_capacity(len + 10);
        out.push(0x80 | opcode);
        if len < 126 {
            out.push(len as u8);
        } else if let Ok(len) = u16::try_from(len) {
            out.push(126);
            out.extend_from_slice(&len.to_be_bytes());
        } else {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        for p in parts {
            out.extend_from_slice(p);
        }
        self.io.write_all(&out).await?;
        self.io.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_is_the_rfc_example() {
        // RFC 6455 section 1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        if payload.len() < 126 {
            out.push(0x80 | payload.len() as u8);
        } else {
            out.push(0x80 | 126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[tokio::test]
    async fn messages_are_unmasked_and_fragments_joined() {
        let big = vec![7u8; 300];
        let mut wire = masked(0x2, true, b"\x00hi");
        wire.extend(masked(0x2, false, b"ab"));
        wire.extend(masked(0x9, true, b"p"));
        wire.extend(masked(0x0, true, b"cd"));
        wire.extend(masked(0x2, true, &big));
        wire.extend(masked(0x8, true, &1000u16.to_be_bytes()));
        let mut r = Reader::new(&wire[..]);
        assert_eq!(
            r.next().await.unwrap(),
            Some(Message::Binary(b"\x00hi".to_vec()))
        );
        assert_eq!(r.next().await.unwrap(), Some(Message::Ping(b"p".to_vec())));
        assert_eq!(
            r.next().await.unwrap(),
            Some(Message::Binary(b"abcd".to_vec()))
        );
        assert_eq!(r.next().await.unwrap(), Some(Message::Binary(big)));
        assert_eq!(r.next().await.unwrap(), Some(Message::Close(Some(1000))));
        assert_eq!(r.next().await.unwrap(), None);
    }

    #[tokio::test]
    async fn oversized_and_stray_frames_are_errors() {
        let mut huge = vec![0x82, 0x80 | 127];
        huge.extend_from_slice(&(u64::MAX).to_be_bytes());
        assert!(Reader::new(&huge[..]).next().await.is_err());
        let stray = masked(0x0, true, b"x");
        assert!(Reader::new(&stray[..]).next().await.is_err());
    }

    #[tokio::test]
    async fn frames_are_written_unmasked_with_their_length() {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        w.binary(&[b"\x01", b"ok"]).await.unwrap();
        w.binary(&[&[0u8; 200]]).await.unwrap();
        assert_eq!(&out[..5], b"\x82\x03\x01ok");
        assert_eq!(&out[5..9], &[0x82, 126, 0, 200]);
        assert_eq!(out.len(), 9 + 200);
    }
}
