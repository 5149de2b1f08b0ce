//! SPDY/3.1 frames: the in-memory form, the header block (name/value pairs,
//! zlib-compressed with the SPDY/3 dictionary, one compression context per
//! direction) and a `tokio_util` codec that reads and writes them.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio_util::codec::{Decoder, Encoder};

use super::dictionary::{SPDY3_DICTIONARY, SPDY3_DICTIONARY_ID};

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;
/// FLAG_FIN on data frames, SYN_STREAM, SYN_REPLY and HEADERS.
pub const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL on SYN_STREAM.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// FLAG_SETTINGS_CLEAR_SETTINGS on SETTINGS.
pub const FLAG_SETTINGS_CLEAR: u8 = 0x01;
/// The largest frame payload the 24-bit length field can carry.
pub const MAX_FRAME_LENGTH: usize = 0x00ff_ffff;
/// The largest header block we inflate (a guard against zlib bombs).
pub const MAX_HEADER_BLOCK: usize = 1 << 20;

/// Control frame types.
pub mod frame_type {
    pub const SYN_STREAM: u16 = 1;
    pub const SYN_REPLY: u16 = 2;
    pub const RST_STREAM: u16 = 3;
    pub const SETTINGS: u16 = 4;
    pub const PING: u16 = 6;
    pub const GOAWAY: u16 = 7;
    pub const HEADERS: u16 = 8;
    pub const WINDOW_UPDATE: u16 = 9;
}

/// RST_STREAM status codes.
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INVALID_STREAM: u32 = 2;
    pub const REFUSED_STREAM: u32 = 3;
    pub const UNSUPPORTED_VERSION: u32 = 4;
    pub const CANCEL: u32 = 5;
    pub const INTERNAL_ERROR: u32 = 6;
    pub const FLOW_CONTROL_ERROR: u32 = 7;
    pub const STREAM_IN_USE: u32 = 8;
    pub const STREAM_ALREADY_CLOSED: u32 = 9;
    pub const FRAME_TOO_LARGE: u32 = 11;
}

/// SETTINGS ids.
pub mod settings {
    pub const MAX_CONCURRENT_STREAMS: u32 = 4;
    pub const INITIAL_WINDOW_SIZE: u32 = 7;
}

/// GOAWAY status codes.
pub mod goaway {
    pub const OK: u32 = 0;
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INTERNAL_ERROR: u32 = 2;
}

/// A header block: name/value pairs in order. Names are lowercase on the
/// wire (Go's framer rejects others); several values of one name travel
/// joined by NUL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pair; the name is lowercased.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.insert(name, value);
        self
    }

    /// Adds a value; a second value of a present name is joined with NUL.
    pub fn insert(&mut self, name: &str, value: &str) {
        let name = name.to_ascii_lowercase();
        if let Some((_, v)) = self.0.iter_mut().find(|(n, _)| *n == name) {
            v.push('\0');
            v.push_str(value);
        } else {
            self.0.push((name, value.to_owned()));
        }
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split('\0').next().unwrap_or(""))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The uncompressed block: u32 count, then u32-length-prefixed names and
    /// values.
    pub fn encode_block(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            4 + self
                .0
                .iter()
                .map(|(n, v)| 8 + n.len() + v.len())
                .sum::<usize>(),
        );
        out.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        for (n, v) in &self.0 {
            out.extend_from_slice(&(n.len() as u32).to_be_bytes());
            out.extend_from_slice(n.to_ascii_lowercase().as_bytes());
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        out
    }

    /// Parses an uncompressed block.
    pub fn decode_block(mut block: &[u8]) -> Result<Headers, FrameError> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
            if b.len() < n {
                return Err(FrameError::Protocol("truncated header block"));
            }
            let (head, tail) = b.split_at(n);
            *b = tail;
            Ok(head)
        }
        fn take_u32(b: &mut &[u8]) -> Result<usize, FrameError> {
            let s = take(b, 4)?;
            Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
        }
        let count = take_u32(&mut block)?;
        let mut headers = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let n = take_u32(&mut block)?;
            let name = take(&mut block, n)?;
            let n = take_u32(&mut block)?;
            let value = take(&mut block, n)?;
            if name.is_empty() {
                return Err(FrameError::Protocol("empty header name"));
            }
            let name = String::from_utf8_lossy(name).into_owned();
            let value = String::from_utf8_lossy(value).into_owned();
            headers.push((name, value));
        }
        Ok(Headers(headers))
    }
}

/// One SETTINGS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    pub id: u32,
    pub value: u32,
}

/// A SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        slot: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame this implementation does not act on (NOOP,
    /// CREDENTIAL, or a future type): skipped, as the spec asks.
    Unknown {
        frame_type: u16,
        flags: u8,
        payload: Bytes,
    },
}

/// Errors of the frame layer.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("SPDY protocol error: {0}")]
    Protocol(&'static str),
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("header compression: {0}")]
    Compression(String),
}

impl From<FrameError> for std::io::Error {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(e) => e,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// The deflate side of one direction's header compression context.
pub struct HeaderCompressor {
    z: Compress,
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderCompressor {
    pub fn new() -> Self {
        let mut z = Compress::new(Compression::best(), true);
        // Cannot fail on a fresh stream with a zlib backend.
        let _ = z.set_dictionary(&SPDY3_DICTIONARY);
        HeaderCompressor { z }
    }

    /// Compresses one header block, ending with a SYNC_FLUSH so the peer can
    /// inflate it without the rest of the stream.
    pub fn compress(&mut self, headers: &Headers) -> Result<Vec<u8>, FrameError> {
        let block = headers.encode_block();
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut pos = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before = self.z.total_in();
            self.z
                .compress_vec(&block[pos..], &mut out, FlushCompress::Sync)
                .map_err(|e| FrameError::Compression(e.to_string()))?;
            pos += (self.z.total_in() - before) as usize;
            // Done when all input is taken and deflate left spare room
            // (a full buffer may hide more pending output).
            if pos >= block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// The inflate side of one direction's header compression context.
pub struct HeaderDecompressor {
    z: Decompress,
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecompressor {
    pub fn new() -> Self {
        HeaderDecompressor {
            z: Decompress::new(true),
        }
    }

    /// Inflates the next compressed header block of the stream.
    pub fn decompress(&mut self, input: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 256);
        let mut pos = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(FrameError::Protocol("header block too large"));
                }
                out.reserve(out.capacity().max(256));
            }
            let (in_before, out_before) = (self.z.total_in(), self.z.total_out());
            let res = self
                .z
                .decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync);
            pos += (self.z.total_in() - in_before) as usize;
            let progressed = self.z.total_in() != in_before || self.z.total_out() != out_before;
            match res {
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(_) => {
                    if pos >= input.len() && out.len() < out.capacity() {
                        return Ok(out);
                    }
                    if !progressed && out.len() < out.capacity() {
                        return Err(FrameError::Compression("truncated header block".into()));
                    }
                }
                Err(e) => match e.needs_dictionary() {
                    Some(id) if id == SPDY3_DICTIONARY_ID => {
                        self.z
                            .set_dictionary(&SPDY3_DICTIONARY)
                            .map_err(|e| FrameError::Compression(e.to_string()))?;
                    }
                    Some(id) => {
                        return Err(FrameError::Compression(format!(
                            "header block needs unknown dictionary {id:#x}"
                        )));
                    }
                    None => return Err(FrameError::Compression(e.to_string())),
                },
            }
        }
    }
}

/// Reads and writes SPDY frames; owns the two header compression contexts
/// (deflate for what it encodes, inflate for what it decodes).
#[derive(Default)]
pub struct SpdyCodec {
    compressor: HeaderCompressor,
    decompressor: HeaderDecompressor,
}

impl SpdyCodec {
    pub fn new() -> Self {
        Self::default()
    }
}

fn put_control_header(dst: &mut BytesMut, frame_type: u16, flags: u8, len: usize) {
    dst.put_u16(0x8000 | VERSION);
    dst.put_u16(frame_type);
    dst.put_u32(((flags as u32) << 24) | (len as u32 & 0x00ff_ffff));
}

impl SpdyCodec {
    fn put_header_frame(
        &mut self,
        dst: &mut BytesMut,
        ty: u16,
        stream_id: u32,
        flags: u8,
        headers: &Headers,
    ) -> Result<(), FrameError> {
        let block = self.compressor.compress(headers)?;
        let len = 4 + block.len();
        if len > MAX_FRAME_LENGTH {
            return Err(FrameError::Protocol("header block too large"));
        }
        put_control_header(dst, ty, flags, len);
        dst.put_u32(stream_id & 0x7fff_ffff);
        dst.put_slice(&block);
        Ok(())
    }
}

impl Encoder<Frame> for SpdyCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        match frame {
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                slot,
                flags,
                headers,
            } => {
                let block = self.compressor.compress(&headers)?;
                let len = 10 + block.len();
                if len > MAX_FRAME_LENGTH {
                    return Err(FrameError::Protocol("header block too large"));
                }
                put_control_header(dst, frame_type::SYN_STREAM, flags, len);
                dst.put_u32(stream_id & 0x7fff_ffff);
                dst.put_u32(associated_to & 0x7fff_ffff);
                dst.put_u8((priority & 0x07) << 5);
                dst.put_u8(slot);
                dst.put_slice(&block);
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => self.put_header_frame(dst, frame_type::SYN_REPLY, stream_id, flags, &headers)?,
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => self.put_header_frame(dst, frame_type::HEADERS, stream_id, flags, &headers)?,
            Frame::RstStream { stream_id, status } => {
                put_control_header(dst, frame_type::RST_STREAM, 0, 8);
                dst.put_u32(stream_id & 0x7fff_ffff);
                dst.put_u32(status);
            }
            Frame::Settings { flags, entries } => {
                put_control_header(dst, frame_type::SETTINGS, flags, 4 + 8 * entries.len());
                dst.put_u32(entries.len() as u32);
                for e in entries {
                    dst.put_u32(((e.flags as u32) << 24) | (e.id & 0x00ff_ffff));
                    dst.put_u32(e.value);
                }
            }
            Frame::Ping { id } => {
                put_control_header(dst, frame_type::PING, 0, 4);
                dst.put_u32(id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                put_control_header(dst, frame_type::GOAWAY, 0, 8);
                dst.put_u32(last_good_stream_id & 0x7fff_ffff);
                dst.put_u32(status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                put_control_header(dst, frame_type::WINDOW_UPDATE, 0, 8);
                dst.put_u32(stream_id & 0x7fff_ffff);
                dst.put_u32(delta & 0x7fff_ffff);
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                if data.len() > MAX_FRAME_LENGTH {
                    return Err(FrameError::Protocol("data frame too large"));
                }
                dst.reserve(8 + data.len());
                dst.put_u32(stream_id & 0x7fff_ffff);
                dst.put_u32(((flags as u32) << 24) | data.len() as u32);
                dst.put_slice(&data);
            }
            Frame::Unknown {
                frame_type,
                flags,
                payload,
            } => {
                put_control_header(dst, frame_type, flags, payload.len());
                dst.put_slice(&payload);
            }
        }
        Ok(())
    }
}

fn need(payload: &[u8], n: usize) -> Result<(), FrameError> {
    if payload.len() < n {
        Err(FrameError::Protocol("control frame too short"))
    } else {
        Ok(())
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Decoder for SpdyCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < 8 {
            src.reserve(8);
            return Ok(None);
        }
        let word = be32(&src[0..4]);
        let flags = src[4];
        let len = (be32(&src[4..8]) & 0x00ff_ffff) as usize;
        if src.len() < 8 + len {
            src.reserve(8 + len - src.len());
            return Ok(None);
        }
        src.advance(8);
        let payload = src.split_to(len).freeze();
        if word & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream_id: word & 0x7fff_ffff,
                flags,
                data: payload,
            }));
        }
        let version = ((word >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        let ty = (word & 0xffff) as u16;
        let p = &payload[..];
        let frame = match ty {
            frame_type::SYN_STREAM => {
                need(p, 10)?;
                let block = self.decompressor.decompress(&p[10..])?;
                Frame::SynStream {
                    stream_id: be32(&p[0..4]) & 0x7fff_ffff,
                    associated_to: be32(&p[4..8]) & 0x7fff_ffff,
                    priority: p[8] >> 5,
                    slot: p[9],
                    flags,
                    headers: Headers::decode_block(&block)?,
                }
            }
            frame_type::SYN_REPLY | frame_type::HEADERS => {
                need(p, 4)?;
                let block = self.decompressor.decompress(&p[4..])?;
                let stream_id = be32(&p[0..4]) & 0x7fff_ffff;
                let headers = Headers::decode_block(&block)?;
                if ty == frame_type::SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            }
            frame_type::RST_STREAM => {
                need(p, 8)?;
                Frame::RstStream {
                    stream_id: be32(&p[0..4]) & 0x7fff_ffff,
                    status: be32(&p[4..8]),
                }
            }
            frame_type::SETTINGS => {
                need(p, 4)?;
                let n = be32(&p[0..4]) as usize;
                if p.len() < 4 + n.saturating_mul(8) {
                    return Err(FrameError::Protocol("SETTINGS too short"));
                }
                let entries = (0..n)
                    .map(|i| {
                        let e = &p[4 + 8 * i..12 + 8 * i];
                        let w = be32(&e[0..4]);
                        Setting {
                            flags: (w >> 24) as u8,
                            id: w & 0x00ff_ffff,
                            value: be32(&e[4..8]),
                        }
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            frame_type::PING => {
                need(p, 4)?;
                Frame::Ping { id: be32(&p[0..4]) }
            }
            frame_type::GOAWAY => {
                need(p, 4)?;
                Frame::GoAway {
                    last_good_stream_id: be32(&p[0..4]) & 0x7fff_ffff,
                    status: if p.len() >= 8 {
                        be32(&p[4..8])
                    } else {
                        goaway::OK
                    },
                }
            }
            frame_type::WINDOW_UPDATE => {
                need(p, 8)?;
                Frame::WindowUpdate {
                    stream_id: be32(&p[0..4]) & 0x7fff_ffff,
                    delta: be32(&p[4..8]) & 0x7fff_ffff,
                }
            }
            _ => Frame::Unknown {
                frame_type: ty,
                flags,
                payload,
            },
        };
        Ok(Some(frame))
    }
}
