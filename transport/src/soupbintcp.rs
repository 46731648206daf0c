//! SoupBinTCP 4.0 framing: every packet of Nasdaq's session layer, a streaming
//! decoder that splits a TCP byte stream into packets without copying, and an
//! encoder that writes into a caller's buffer.
//!
//! A packet on the wire is a 2-byte big-endian length (counting the type byte
//! and the payload, not itself), a 1-byte packet type, then the payload. The
//! decoder never trusts the length beyond what it can check: it rejects a zero
//! length and a length above its configured maximum as soon as the two length
//! bytes arrive (so a slowloris peer cannot make us wait for a 64 KiB frame we
//! would refuse anyway), rejects an unknown type or a wrong length for a
//! fixed-size packet as soon as the type byte arrives, and otherwise returns
//! `Ok(None)` until the whole frame is buffered. It never reads past the frame
//! and never panics, whatever the input.
//!
//! Alpha fields are ASCII, numeric fields are ASCII decimal right-justified and
//! space-padded on the left, as the specification lays them out. Session names
//! are also right-justified (left-padded with spaces), as the specification
//! pads the session in Login Accepted; see `docs/protocol.md`.

use std::fmt;

/// Size of the length prefix.
pub const LENGTH_PREFIX: usize = 2;
/// Size of the length prefix plus the packet type byte.
pub const HEADER_LEN: usize = 3;
/// Default largest accepted value of the length field. The biggest OUCH 4.2
/// message is 80 bytes, so 1 KiB leaves room for debug text while bounding
/// what one session can make us buffer.
pub const DEFAULT_MAX_PACKET_LEN: u16 = 1024;

/// Width of the username field of Login Request.
pub const USERNAME_LEN: usize = 6;
/// Width of the password field of Login Request.
pub const PASSWORD_LEN: usize = 10;
/// Width of a session name.
pub const SESSION_LEN: usize = 10;
/// Width of a numeric sequence number field.
pub const SEQUENCE_LEN: usize = 20;

/// Value of the length field for Login Request: type + 6 + 10 + 10 + 20.
pub const LOGIN_REQUEST_LEN: u16 = 47;
/// Value of the length field for Login Accepted: type + 10 + 20.
pub const LOGIN_ACCEPTED_LEN: u16 = 31;
/// Value of the length field for Login Rejected: type + reason.
pub const LOGIN_REJECTED_LEN: u16 = 2;

/// Packet type bytes.
pub mod packet_type {
    pub const DEBUG: u8 = b'+';
    pub const LOGIN_ACCEPTED: u8 = b'A';
    pub const LOGIN_REJECTED: u8 = b'J';
    pub const SEQUENCED_DATA: u8 = b'S';
    pub const SERVER_HEARTBEAT: u8 = b'H';
    pub const END_OF_SESSION: u8 = b'Z';
    pub const LOGIN_REQUEST: u8 = b'L';
    pub const UNSEQUENCED_DATA: u8 = b'U';
    pub const CLIENT_HEARTBEAT: u8 = b'R';
    pub const LOGOUT_REQUEST: u8 = b'O';
}

/// Why a server refused a login ('A' not authorized, 'S' session not available).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginRejectReason {
    /// 'A': bad username or password.
    NotAuthorized,
    /// 'S': the requested session is not available.
    SessionNotAvailable,
}

impl LoginRejectReason {
    pub const fn as_byte(self) -> u8 {
        match self {
            Self::NotAuthorized => b'A',
            Self::SessionNotAvailable => b'S',
        }
    }

    pub const fn from_byte(b: u8) -> Option<Self> {
        match b {
            b'A' => Some(Self::NotAuthorized),
            b'S' => Some(Self::SessionNotAvailable),
            _ => None,
        }
    }
}

pub use crate::ascii_field::AsciiField;

pub type Username = AsciiField<USERNAME_LEN>;
pub type Password = AsciiField<PASSWORD_LEN>;
pub type SessionName = AsciiField<SESSION_LEN>;

/// One SoupBinTCP packet. Payloads borrow from the decoder's input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// '+', either direction: free-form text, ignored by the peer.
    Debug(&'a [u8]),
    /// 'A', server: login succeeded; `sequence_number` is the number of the
    /// next Sequenced Data packet the server will send.
    LoginAccepted {
        session: SessionName,
        sequence_number: u64,
    },
    /// 'J', server.
    LoginRejected(LoginRejectReason),
    /// 'S', server: one higher-level (OUCH) message; its sequence number is
    /// implicit (counted by both sides from Login Accepted).
    SequencedData(&'a [u8]),
    /// 'H', server.
    ServerHeartbeat,
    /// 'Z', server: the session has ended; the client must not reconnect to it.
    EndOfSession,
    /// 'L', client. A blank `requested_session` means the current session;
    /// `requested_sequence_number` 0 means "from the most recent message".
    LoginRequest {
        username: Username,
        password: Password,
        requested_session: SessionName,
        requested_sequence_number: u64,
    },
    /// 'U', client: one higher-level (OUCH) message.
    UnsequencedData(&'a [u8]),
    /// 'R', client.
    ClientHeartbeat,
    /// 'O', client.
    LogoutRequest,
}

impl Packet<'_> {
    pub const fn packet_type(&self) -> u8 {
        use packet_type as t;
        match self {
            Self::Debug(_) => t::DEBUG,
            Self::LoginAccepted { .. } => t::LOGIN_ACCEPTED,
            Self::LoginRejected(_) => t::LOGIN_REJECTED,
            Self::SequencedData(_) => t::SEQUENCED_DATA,
            Self::ServerHeartbeat => t::SERVER_HEARTBEAT,
            Self::EndOfSession => t::END_OF_SESSION,
            Self::LoginRequest { .. } => t::LOGIN_REQUEST,
            Self::UnsequencedData(_) => t::UNSEQUENCED_DATA,
            Self::ClientHeartbeat => t::CLIENT_HEARTBEAT,
            Self::LogoutRequest => t::LOGOUT_REQUEST,
        }
    }

    /// True for the packets a client sends (the gateway must refuse the others).
    pub const fn is_from_client(&self) -> bool {
        matches!(
            self,
            Self::LoginRequest { .. }
                | Self::UnsequencedData(_)
                | Self::ClientHeartbeat
                | Self::LogoutRequest
                | Self::Debug(_)
        )
    }

    /// Bytes after the type byte.
    pub fn payload_len(&self) -> usize {
        match self {
            Self::Debug(p) | Self::SequencedData(p) | Self::UnsequencedData(p) => p.len(),
            Self::LoginAccepted { .. } => usize::from(LOGIN_ACCEPTED_LEN) - 1,
            Self::LoginRejected(_) => usize::from(LOGIN_REJECTED_LEN) - 1,
            Self::LoginRequest { .. } => usize::from(LOGIN_REQUEST_LEN) - 1,
            Self::ServerHeartbeat
            | Self::EndOfSession
            | Self::ClientHeartbeat
            | Self::LogoutRequest => 0,
        }
    }

    /// Bytes the whole frame occupies on the wire, length prefix included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Writes the frame at the start of `buf` and returns its length.
    pub fn encode_into(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let total = self.encoded_len();
        // The length field counts type + payload and is 16 bits wide.
        let len_field =
            u16::try_from(total - LENGTH_PREFIX).map_err(|_| EncodeError::PayloadTooLong {
                len: self.payload_len(),
            })?;
        if buf.len() < total {
            return Err(EncodeError::BufferTooSmall {
                needed: total,
                available: buf.len(),
            });
        }
        let frame = &mut buf[..total];
        frame[..2].copy_from_slice(&len_field.to_be_bytes());
        frame[2] = self.packet_type();
        let p = &mut frame[HEADER_LEN..];
        match self {
            Self::Debug(d) | Self::SequencedData(d) | Self::UnsequencedData(d) => {
                p.copy_from_slice(d)
            }
            Self::LoginAccepted {
                session,
                sequence_number,
            } => {
                p[..SESSION_LEN].copy_from_slice(&session.0);
                write_numeric(&mut p[SESSION_LEN..], *sequence_number);
            }
            Self::LoginRejected(r) => p[0] = r.as_byte(),
            Self::LoginRequest {
                username,
                password,
                requested_session,
                requested_sequence_number,
            } => {
                let (u, rest) = p.split_at_mut(USERNAME_LEN);
                let (pw, rest) = rest.split_at_mut(PASSWORD_LEN);
                let (s, seq) = rest.split_at_mut(SESSION_LEN);
                u.copy_from_slice(&username.0);
                pw.copy_from_slice(&password.0);
                s.copy_from_slice(&requested_session.0);
                write_numeric(seq, *requested_sequence_number);
            }
            Self::ServerHeartbeat
            | Self::EndOfSession
            | Self::ClientHeartbeat
            | Self::LogoutRequest => {}
        }
        Ok(total)
    }

    /// Appends the frame to `out` (growing it only if its capacity is short)
    /// and returns the frame's length.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
        let start = out.len();
        out.resize(start + self.encoded_len(), 0);
        match self.encode_into(&mut out[start..]) {
            Ok(n) => Ok(n),
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }
}

/// Writes the header of a Sequenced or Unsequenced Data frame whose payload the
/// caller writes in place right after it, so an OUCH message can be encoded
/// straight into the output buffer with no intermediate copy.
pub fn encode_data_header(
    packet_type: u8,
    payload_len: usize,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let len_field = u16::try_from(payload_len + 1)
        .map_err(|_| EncodeError::PayloadTooLong { len: payload_len })?;
    if buf.len() < HEADER_LEN {
        return Err(EncodeError::BufferTooSmall {
            needed: HEADER_LEN,
            available: buf.len(),
        });
    }
    buf[..2].copy_from_slice(&len_field.to_be_bytes());
    buf[2] = packet_type;
    Ok(HEADER_LEN)
}

/// Right-justified, space-padded ASCII decimal. 20 columns hold any u64.
fn write_numeric(field: &mut [u8], mut v: u64) {
    field.fill(b' ');
    let mut i = field.len();
    loop {
        i -= 1;
        field[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
}

/// Parses a numeric field: optional spaces, at least one digit, optional
/// spaces. Right-justified is what the spec sends; trailing spaces are
/// tolerated because left-justifying clients exist and the value is unambiguous.
fn parse_numeric(field: &[u8], name: &'static str) -> Result<u64, FrameError> {
    let digits = field.trim_ascii();
    if digits.is_empty() {
        return Err(FrameError::BadNumeric { field: name });
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(FrameError::BadNumeric { field: name });
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or(FrameError::BadNumeric { field: name })?;
    }
    Ok(v)
}

fn alpha<const N: usize>(b: &[u8], name: &'static str) -> Result<AsciiField<N>, FrameError> {
    let arr: [u8; N] = b
        .try_into()
        .map_err(|_| FrameError::BadAlpha { field: name })?;
    if !arr.iter().all(|c| (0x20..0x7f).contains(c)) {
        return Err(FrameError::BadAlpha { field: name });
    }
    Ok(AsciiField(arr))
}

/// A frame the decoder refuses. Every one of these is fatal for the
/// connection: after it the byte stream cannot be resynchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The length field is 0, so there is not even a type byte.
    ZeroLength,
    /// The length field exceeds the decoder's maximum.
    TooLong { len: u16, max: u16 },
    /// The type byte is not a SoupBinTCP 4.0 packet type.
    UnknownType(u8),
    /// A fixed-size packet with the wrong length.
    BadLength {
        packet_type: u8,
        len: u16,
        expected: u16,
    },
    /// A numeric field that is not space-padded ASCII decimal fitting a u64.
    BadNumeric { field: &'static str },
    /// An alpha field with a non-printable byte.
    BadAlpha { field: &'static str },
    /// An enumerated byte outside its allowed values.
    BadEnum { field: &'static str, value: u8 },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroLength => write!(f, "SoupBinTCP packet length 0"),
            Self::TooLong { len, max } => {
                write!(f, "SoupBinTCP packet length {len} exceeds maximum {max}")
            }
            Self::UnknownType(t) => write!(f, "unknown SoupBinTCP packet type 0x{t:02x}"),
            Self::BadLength {
                packet_type,
                len,
                expected,
            } => write!(
                f,
                "SoupBinTCP packet '{}' has length {len}, expected {expected}",
                packet_type.escape_ascii()
            ),
            Self::BadNumeric { field } => write!(f, "SoupBinTCP field {field}: not a number"),
            Self::BadAlpha { field } => write!(f, "SoupBinTCP field {field}: not printable ASCII"),
            Self::BadEnum { field, value } => write!(
                f,
                "SoupBinTCP field {field}: invalid value '{}'",
                value.escape_ascii()
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// A frame the encoder cannot write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// Type + payload does not fit the 16-bit length field.
    PayloadTooLong { len: usize },
    /// The caller's slice is shorter than the frame.
    BufferTooSmall { needed: usize, available: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PayloadTooLong { len } => {
                write!(f, "payload of {len} bytes does not fit a SoupBinTCP frame")
            }
            Self::BufferTooSmall { needed, available } => {
                write!(f, "buffer of {available} bytes, frame needs {needed}")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// Streaming decoder with a configurable maximum length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    max_packet_len: u16,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PACKET_LEN)
    }
}

/// The length field a fixed-size packet type must carry, `None` for the
/// variable-size ones, `Err` for an unknown type.
fn expected_len(t: u8) -> Result<Option<u16>, FrameError> {
    use packet_type as p;
    match t {
        p::DEBUG | p::SEQUENCED_DATA | p::UNSEQUENCED_DATA => Ok(None),
        p::LOGIN_ACCEPTED => Ok(Some(LOGIN_ACCEPTED_LEN)),
        p::LOGIN_REJECTED => Ok(Some(LOGIN_REJECTED_LEN)),
        p::LOGIN_REQUEST => Ok(Some(LOGIN_REQUEST_LEN)),
        p::SERVER_HEARTBEAT | p::END_OF_SESSION | p::CLIENT_HEARTBEAT | p::LOGOUT_REQUEST => {
            Ok(Some(1))
        }
        other => Err(FrameError::UnknownType(other)),
    }
}

impl Decoder {
    /// `max_packet_len` bounds the length field (type + payload). Values below
    /// the longest fixed-size packet (Login Request, 47) would make logins
    /// impossible, so they are raised to it.
    pub const fn new(max_packet_len: u16) -> Self {
        let max_packet_len = if max_packet_len < LOGIN_REQUEST_LEN {
            LOGIN_REQUEST_LEN
        } else {
            max_packet_len
        };
        Self { max_packet_len }
    }

    pub const fn max_packet_len(&self) -> u16 {
        self.max_packet_len
    }

    /// Decodes the first frame of `buf`. `Ok(None)`: the frame is incomplete
    /// (read more and call again with the same bytes at the front). `Ok(Some((p,
    /// n)))`: `p` occupies `buf[..n]`. `Err`: the stream is malformed; drop the
    /// connection.
    pub fn decode<'a>(&self, buf: &'a [u8]) -> Result<Option<(Packet<'a>, usize)>, FrameError> {
        let Some(&[hi, lo]) = buf.get(..LENGTH_PREFIX) else {
            return Ok(None);
        };
        let len = u16::from_be_bytes([hi, lo]);
        if len == 0 {
            return Err(FrameError::ZeroLength);
        }
        if len > self.max_packet_len {
            return Err(FrameError::TooLong {
                len,
                max: self.max_packet_len,
            });
        }
        let Some(&t) = buf.get(LENGTH_PREFIX) else {
            return Ok(None);
        };
        if let Some(expected) = expected_len(t)? {
            if len != expected {
                return Err(FrameError::BadLength {
                    packet_type: t,
                    len,
                    expected,
                });
            }
        }
        let total = LENGTH_PREFIX + usize::from(len);
        let Some(frame) = buf.get(..total) else {
            return Ok(None);
        };
        let p = &frame[HEADER_LEN..];
        use packet_type as pt;
        let packet = match t {
            pt::DEBUG => Packet::Debug(p),
            pt::SEQUENCED_DATA => Packet::SequencedData(p),
            pt::UNSEQUENCED_DATA => Packet::UnsequencedData(p),
            pt::SERVER_HEARTBEAT => Packet::ServerHeartbeat,
            pt::END_OF_SESSION => Packet::EndOfSession,
            pt::CLIENT_HEARTBEAT => Packet::ClientHeartbeat,
            pt::LOGOUT_REQUEST => Packet::LogoutRequest,
            pt::LOGIN_REJECTED => {
                let b = p.first().copied().unwrap_or(0);
                Packet::LoginRejected(LoginRejectReason::from_byte(b).ok_or(
                    FrameError::BadEnum {
                        field: "reject reason code",
                        value: b,
                    },
                )?)
            }
            pt::LOGIN_ACCEPTED => {
                let (s, seq) = p.split_at(SESSION_LEN);
                Packet::LoginAccepted {
                    session: alpha(s, "session")?,
                    sequence_number: parse_numeric(seq, "sequence number")?,
                }
            }
            pt::LOGIN_REQUEST => {
                let (u, rest) = p.split_at(USERNAME_LEN);
                let (pw, rest) = rest.split_at(PASSWORD_LEN);
                let (s, seq) = rest.split_at(SESSION_LEN);
                Packet::LoginRequest {
                    username: alpha(u, "username")?,
                    password: alpha(pw, "password")?,
                    requested_session: alpha(s, "requested session")?,
                    requested_sequence_number: parse_numeric(seq, "requested sequence number")?,
                }
            }
            other => return Err(FrameError::UnknownType(other)),
        };
        Ok(Some((packet, total)))
    }
}

/// [`Decoder::decode`] with [`DEFAULT_MAX_PACKET_LEN`].
pub fn decode(buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>, FrameError> {
    Decoder::default().decode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(p: &Packet<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        let n = p.encode(&mut v).expect("encodes");
        assert_eq!(n, v.len());
        v
    }

    fn all_packets() -> Vec<Packet<'static>> {
        vec![
            Packet::Debug(b"hello, debug"),
            Packet::LoginAccepted {
                session: SessionName::right("SESS01").unwrap(),
                sequence_number: 12345,
            },
            Packet::LoginRejected(LoginRejectReason::NotAuthorized),
            Packet::LoginRejected(LoginRejectReason::SessionNotAvailable),
            Packet::SequencedData(b"S\0\0\0\0\0\0\0\x01S"),
            Packet::ServerHeartbeat,
            Packet::EndOfSession,
            Packet::LoginRequest {
                username: Username::left("demo1").unwrap(),
                password: Password::left("demo1pass").unwrap(),
                requested_session: SessionName::BLANK,
                requested_sequence_number: 1,
            },
            Packet::UnsequencedData(b"X01234567890123\0\0\0\0"),
            Packet::ClientHeartbeat,
            Packet::LogoutRequest,
            Packet::Debug(b""),
            Packet::SequencedData(b""),
        ]
    }

    #[test]
    fn round_trip_every_packet() {
        for p in all_packets() {
            let bytes = enc(&p);
            let (q, n) = decode(&bytes).unwrap().unwrap();
            assert_eq!(q, p);
            assert_eq!(n, bytes.len());
            // and through a slice encoder
            let mut buf = [0u8; 64];
            let m = p.encode_into(&mut buf).unwrap();
            assert_eq!(&buf[..m], &bytes[..]);
        }
    }

    #[test]
    fn round_trip_extreme_sequence_numbers() {
        for seq in [0, 1, 9, 10, u64::MAX] {
            let p = Packet::LoginAccepted {
                session: SessionName::right("1234567890").unwrap(),
                sequence_number: seq,
            };
            assert_eq!(decode(&enc(&p)).unwrap().unwrap().0, p);
        }
    }

    // Login Request, SoupBinTCP 4.0 section "Login Request Packet":
    // offset 0 length 2 = 47 (0x002F); 2 type 'L'; 3 username 6 alpha;
    // 9 password 10 alpha; 19 requested session 10 alpha; 29 requested
    // sequence number 20 numeric (right-justified, space-padded).
    #[test]
    fn login_request_matches_spec_layout() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&[0x00, 0x2F]);
        wire.push(b'L');
        wire.extend_from_slice(b"demo1 ");
        wire.extend_from_slice(b"demo1pass ");
        wire.extend_from_slice(b"    SESS01");
        wire.extend_from_slice(b"                  42");
        assert_eq!(wire.len(), 49);
        let p = Packet::LoginRequest {
            username: Username::left("demo1").unwrap(),
            password: Password::left("demo1pass").unwrap(),
            requested_session: SessionName::right("SESS01").unwrap(),
            requested_sequence_number: 42,
        };
        assert_eq!(enc(&p), wire);
        assert_eq!(decode(&wire).unwrap().unwrap(), (p, 49));
    }

    // Login Accepted: 0 length 31 (0x001F); 2 'A'; 3 session 10 alpha
    // (left-padded with spaces); 13 sequence number 20 numeric.
    #[test]
    fn login_accepted_matches_spec_layout() {
        let mut wire = vec![0x00, 0x1F, b'A'];
        wire.extend_from_slice(b"  LOCKSTEP");
        wire.extend_from_slice(b"                   1");
        let p = Packet::LoginAccepted {
            session: SessionName::right("LOCKSTEP").unwrap(),
            sequence_number: 1,
        };
        assert_eq!(enc(&p), wire);
        assert_eq!(decode(&wire).unwrap().unwrap(), (p, 33));
    }

    // Login Rejected: 0 length 2; 2 'J'; 3 reject reason code 'A' / 'S'.
    #[test]
    fn login_rejected_matches_spec_layout() {
        let a = [0x00, 0x02, b'J', b'A'];
        let s = [0x00, 0x02, b'J', b'S'];
        assert_eq!(
            enc(&Packet::LoginRejected(LoginRejectReason::NotAuthorized)),
            a
        );
        assert_eq!(
            enc(&Packet::LoginRejected(
                LoginRejectReason::SessionNotAvailable
            )),
            s
        );
        assert_eq!(
            decode(&s).unwrap().unwrap().0,
            Packet::LoginRejected(LoginRejectReason::SessionNotAvailable)
        );
    }

    // Data and debug packets: 0 length = 1 + payload; 2 type; 3 payload.
    #[test]
    fn data_and_debug_match_spec_layout() {
        let cases: [(&[u8], Packet<'_>); 3] = [
            (b"\x00\x04Sabc", Packet::SequencedData(b"abc")),
            (b"\x00\x03Uxy", Packet::UnsequencedData(b"xy")),
            (b"\x00\x03+hi", Packet::Debug(b"hi")),
        ];
        for (wire, p) in cases {
            assert_eq!(enc(&p), wire);
            assert_eq!(decode(wire).unwrap().unwrap(), (p, wire.len()));
        }
    }

    // Heartbeats, logout and end of session: 0 length 1; 2 type; no payload.
    #[test]
    fn empty_packets_match_spec_layout() {
        for (t, p) in [
            (b'H', Packet::ServerHeartbeat),
            (b'R', Packet::ClientHeartbeat),
            (b'O', Packet::LogoutRequest),
            (b'Z', Packet::EndOfSession),
        ] {
            let wire = [0x00, 0x01, t];
            assert_eq!(enc(&p), wire);
            assert_eq!(decode(&wire).unwrap().unwrap(), (p, 3));
        }
    }

    #[test]
    fn decodes_back_to_back_frames_and_stops_at_frame_end() {
        let mut wire = enc(&Packet::ServerHeartbeat);
        wire.extend(enc(&Packet::SequencedData(b"payload")));
        wire.extend_from_slice(&[0x00]); // start of a third frame
        let (p, n) = decode(&wire).unwrap().unwrap();
        assert_eq!((p, n), (Packet::ServerHeartbeat, 3));
        let (q, m) = decode(&wire[n..]).unwrap().unwrap();
        assert_eq!(q, Packet::SequencedData(b"payload"));
        assert_eq!(decode(&wire[n + m..]), Ok(None));
    }

    #[test]
    fn truncated_frames_are_incomplete() {
        for p in all_packets() {
            let bytes = enc(&p);
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut]), Ok(None), "{p:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn zero_length_is_an_error() {
        assert_eq!(decode(&[0, 0]), Err(FrameError::ZeroLength));
        assert_eq!(decode(&[0, 0, b'H']), Err(FrameError::ZeroLength));
    }

    #[test]
    fn length_beyond_maximum_is_an_error_before_the_body_arrives() {
        let d = Decoder::new(100);
        assert_eq!(
            d.decode(&[0, 101]),
            Err(FrameError::TooLong { len: 101, max: 100 })
        );
        assert_eq!(
            decode(&[0xFF, 0xFF]),
            Err(FrameError::TooLong {
                len: 0xFFFF,
                max: DEFAULT_MAX_PACKET_LEN
            })
        );
        // at the maximum: fine, just incomplete
        assert_eq!(d.decode(&[0, 100, b'S']), Ok(None));
        // a maximum below the login request is raised to it
        assert_eq!(Decoder::new(3).max_packet_len(), LOGIN_REQUEST_LEN);
    }

    #[test]
    fn unknown_packet_type_is_an_error() {
        for t in [b'X', b'a', 0, 0xFF, b'M'] {
            assert_eq!(decode(&[0, 1, t]), Err(FrameError::UnknownType(t)));
        }
    }

    #[test]
    fn wrong_length_for_fixed_packets_is_an_error() {
        assert!(matches!(
            decode(&[0, 2, b'H', 0]),
            Err(FrameError::BadLength {
                packet_type: b'H',
                len: 2,
                expected: 1
            })
        ));
        assert!(matches!(
            decode(&[0, 46, b'L']),
            Err(FrameError::BadLength {
                packet_type: b'L',
                ..
            })
        ));
        assert!(matches!(
            decode(&[0, 3, b'J', b'A', b'A']),
            Err(FrameError::BadLength { .. })
        ));
    }

    #[test]
    fn bad_reject_code_is_an_error() {
        assert_eq!(
            decode(&[0, 2, b'J', b'X']),
            Err(FrameError::BadEnum {
                field: "reject reason code",
                value: b'X'
            })
        );
    }

    #[test]
    fn bad_numeric_and_alpha_fields_are_errors() {
        let good = enc(&all_packets()[7]);
        let mut bad_seq = good.clone();
        bad_seq[48] = b'x';
        assert_eq!(
            decode(&bad_seq),
            Err(FrameError::BadNumeric {
                field: "requested sequence number"
            })
        );
        let mut blank_seq = good.clone();
        blank_seq[29..49].fill(b' ');
        assert!(matches!(
            decode(&blank_seq),
            Err(FrameError::BadNumeric { .. })
        ));
        let mut overflow = good.clone();
        overflow[29..49].copy_from_slice(b"99999999999999999999");
        assert!(matches!(
            decode(&overflow),
            Err(FrameError::BadNumeric { .. })
        ));
        let mut bad_user = good;
        bad_user[3] = 0;
        assert_eq!(
            decode(&bad_user),
            Err(FrameError::BadAlpha { field: "username" })
        );
    }

    #[test]
    fn numeric_field_tolerates_left_justified_and_zero_padded_input() {
        let mut f = [b' '; 20];
        f[..3].copy_from_slice(b"123");
        assert_eq!(parse_numeric(&f, "x"), Ok(123));
        assert_eq!(parse_numeric(b"00000000000000000007", "x"), Ok(7));
    }

    #[test]
    fn encoder_rejects_small_buffer_and_oversize_payload() {
        let mut small = [0u8; 2];
        assert_eq!(
            Packet::ServerHeartbeat.encode_into(&mut small),
            Err(EncodeError::BufferTooSmall {
                needed: 3,
                available: 2
            })
        );
        let big = vec![0u8; 70_000];
        let mut out = Vec::new();
        assert_eq!(
            Packet::SequencedData(&big).encode(&mut out),
            Err(EncodeError::PayloadTooLong { len: 70_000 })
        );
        assert!(out.is_empty());
    }

    #[test]
    fn data_header_then_payload_equals_packet_encoding() {
        let mut buf = [0u8; 16];
        let h = encode_data_header(b'S', 4, &mut buf).unwrap();
        buf[h..h + 4].copy_from_slice(b"abcd");
        assert_eq!(&buf[..h + 4], &enc(&Packet::SequencedData(b"abcd"))[..]);
    }

    #[test]
    fn field_justification() {
        assert_eq!(SessionName::right("AB").unwrap().0, *b"        AB");
        assert_eq!(Username::left("AB").unwrap().0, *b"AB    ");
        assert_eq!(SessionName::right("AB").unwrap().trimmed(), b"AB");
        assert!(Username::left("toolong").is_none());
        assert!(SessionName::BLANK.is_blank());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(Some((_, n))) = decode(&buf) {
                prop_assert!(n <= buf.len());
                prop_assert!(n >= HEADER_LEN);
            }
        }

        #[test]
        fn random_stream_decodes_consistently(
            buf in proptest::collection::vec(any::<u8>(), 0..400),
            max in 1u16..2000,
        ) {
            let d = Decoder::new(max);
            let mut rest = &buf[..];
            while let Ok(Some((_, n))) = d.decode(rest) {
                prop_assert!(n <= rest.len());
                rest = &rest[n..];
            }
        }

        #[test]
        fn any_prefix_of_a_valid_frame_is_incomplete(
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            kind in 0usize..3,
            cut_frac in 0.0f64..1.0,
        ) {
            let p = match kind {
                0 => Packet::SequencedData(&payload),
                1 => Packet::UnsequencedData(&payload),
                _ => Packet::Debug(&payload),
            };
            let bytes = enc(&p);
            let cut = ((bytes.len() as f64) * cut_frac) as usize;
            prop_assert_eq!(decode(&bytes[..cut]), Ok(None));
            prop_assert_eq!(decode(&bytes), Ok(Some((p, bytes.len()))));
        }

        #[test]
        fn login_request_round_trips(
            user in "[A-Za-z0-9]{0,6}",
            pass in "[A-Za-z0-9]{0,10}",
            session in "[A-Za-z0-9]{0,10}",
            seq in any::<u64>(),
        ) {
            let p = Packet::LoginRequest {
                username: Username::left(&user).unwrap(),
                password: Password::left(&pass).unwrap(),
                requested_session: SessionName::right(&session).unwrap(),
                requested_sequence_number: seq,
            };
            let bytes = enc(&p);
            prop_assert_eq!(decode(&bytes), Ok(Some((p, bytes.len()))));
        }
    }
}
