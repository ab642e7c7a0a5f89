//! SDP offer/answer (RFC 3264, RFC 4566) for one audio stream: read the
//! trunk's offer (connection address, port, payload types) and write our
//! answer with the first of the trunk's configured codecs the offer has.

use std::net::{IpAddr, SocketAddr};

use super::SipError;
use crate::config::SipCodec;

/// What the far end offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Where it wants our RTP.
    pub rtp: SocketAddr,
    /// Offered payload types, in order, with their encoding names
    /// (static ones named by RFC 3551 when no rtpmap says otherwise).
    pub formats: Vec<(u8, String)>,
    /// The stream's direction (RFC 3264 §5.1; `sendrecv` when absent). A
    /// far end holding us offers `sendonly` or `inactive`; RFC 2543's
    /// `c=0.0.0.0` hold counts as `inactive`.
    pub direction: Direction,
}

/// A negotiated telephone-event format (RFC 4733): its payload type and
/// its clock. RFC 4733 §2.1 and §7.1.1: events sent in the audio's RTP
/// stream (one SSRC) count their timestamps and durations on the audio's
/// clock, so an Opus stream's events are `telephone-event/48000` and a
/// G.711 stream's `telephone-event/8000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Events {
    /// The payload type.
    pub pt: u8,
    /// The clock rate in Hz.
    pub rate: u32,
}

/// The RTP clock of a codec's audio (RFC 3551, RFC 7587 §4.1).
pub fn clock_of(codec: SipCodec) -> u32 {
    match codec {
        SipCodec::Opus => 48_000,
        _ => 8_000,
    }
}

/// Our payload type for `telephone-event/48000` beside Opus (at 111);
/// `telephone-event/8000` keeps 101.
pub const EVENTS_48K_PT: u8 = 110;

/// An SDP stream direction, from the sender of the SDP's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Both ways.
    SendRecv,
    /// It sends only (holds us).
    SendOnly,
    /// It receives only.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Our answer's direction to an offer with this one (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    /// Whether the far end sends us media in this direction.
    pub fn far_end_sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

impl Offer {
    /// Parses the first audio stream of an SDP body.
    pub fn parse(body: &[u8]) -> Result<Offer, SipError> {
        let bad = |m: &str| SipError::BadSdp(m.to_owned());
        let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8"))?;
        let mut session_addr: Option<IpAddr> = None;
        let mut media_addr: Option<IpAddr> = None;
        let mut audio: Option<(u16, Vec<u8>)> = None;
        let mut in_audio = false;
        let mut names: Vec<(u8, String)> = Vec::new();
        let mut direction = Direction::SendRecv;
        if !text.starts_with("v=0") {
            return Err(bad("does not start with v=0"));
        }
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(m) = line.strip_prefix("m=") {
                let mut f = m.split(' ');
                let kind = f.next().unwrap_or_default();
                if kind == "audio" && audio.is_none() {
                    let port: u16 = f
                        .next()
                        .and_then(|p| p.parse().ok())
                        .ok_or_else(|| bad("bad audio port"))?;
                    if f.next() != Some("RTP/AVP") {
                        return Err(bad("audio is not RTP/AVP"));
                    }
                    let pts: Result<Vec<u8>, _> = f.map(str::parse::<u8>).collect();
                    let pts = pts.map_err(|_| bad("bad payload type"))?;
                    audio = Some((port, pts));
                    in_audio = true;
                } else {
                    in_audio = false;
                }
            } else if let Some(c) = line.strip_prefix("c=") {
                let addr = c
                    .strip_prefix("IN IP4 ")
                    .or_else(|| c.strip_prefix("IN IP6 "))
                    .and_then(|a| a.split('/').next())
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    .ok_or_else(|| bad("bad c= line"))?;
                if audio.is_none() {
                    session_addr = Some(addr);
                } else if in_audio {
                    media_addr = Some(addr);
                }
            } else if let Some(dir) = line
                .strip_prefix("a=")
                .filter(|_| audio.is_none() || in_audio)
            {
                match dir {
                    "sendrecv" => direction = Direction::SendRecv,
                    "sendonly" => direction = Direction::SendOnly,
                    "recvonly" => direction = Direction::RecvOnly,
                    "inactive" => direction = Direction::Inactive,
                    _ => {}
                }
                if let Some(map) = dir.strip_prefix("rtpmap:").filter(|_| in_audio) {
                    let (pt, name) = map.split_once(' ').ok_or_else(|| bad("bad rtpmap"))?;
                    let pt: u8 = pt.parse().map_err(|_| bad("bad rtpmap"))?;
                    names.push((pt, name.to_ascii_lowercase()));
                }
            }
        }
        let (port, pts) = audio.ok_or_else(|| bad("no audio stream"))?;
        let ip = media_addr
            .or(session_addr)
            .ok_or_else(|| bad("no connection address"))?;
        if port == 0 {
            return Err(bad("audio stream refused (port 0)"));
        }
        if ip.is_unspecified() {
            direction = Direction::Inactive;
        }
        let formats = pts
            .into_iter()
            .map(|pt| {
                let name = names
                    .iter()
                    .find(|(p, _)| *p == pt)
                    .map(|(_, n)| n.clone())
                    .unwrap_or_else(|| match pt {
                        0 => "pcmu/8000".into(),
                        8 => "pcma/8000".into(),
                        _ => String::new(),
                    });
                (pt, name)
            })
            .collect();
        Ok(Offer {
            rtp: SocketAddr::new(ip, port),
            formats,
            direction,
        })
    }

    /// The first of `prefs` (PCMU, PCMA, Opus) the offer has, with
    /// its payload type, and the offer's telephone-event format when
    /// `prefs` allows it: the one on the chosen codec's clock (RFC 4733
    /// §7.1.1), else the first offered at another clock (baresip offers
    /// only `telephone-event/8000`, even beside Opus; its events are then
    /// read and sent with durations on that clock, as it declared).
    pub fn choose(&self, prefs: &[SipCodec]) -> Option<(SipCodec, u8, Option<Events>)> {
        let find = |name: &str| {
            self.formats
                .iter()
                .find(|(_, n)| n.split('/').next() == Some(name))
                .map(|(pt, _)| *pt)
        };
        let (codec, pt) = prefs.iter().find_map(|c| match c {
            SipCodec::Pcmu => find("pcmu").map(|pt| (*c, pt)),
            SipCodec::Pcma => find("pcma").map(|pt| (*c, pt)),
            // RFC 7587 §7: always `opus/48000/2`, whatever is sent; a
            // bare `opus/48000` is read the same.
            SipCodec::Opus => self
                .formats
                .iter()
                .find(|(_, n)| n == "opus/48000/2" || n == "opus/48000")
                .map(|(pt, _)| (*c, *pt)),
            SipCodec::TelephoneEvent => None,
        })?;
        if !prefs.contains(&SipCodec::TelephoneEvent) {
            return Some((codec, pt, None));
        }
        let events: Vec<Events> = self
            .formats
            .iter()
            .filter_map(|(pt, n)| {
                let mut parts = n.split('/');
                if parts.next() != Some("telephone-event") {
                    return None;
                }
                // RFC 4733 §7.1.1: the rate is required; a missing or
                // unreadable one is taken as RFC 3551's default, 8000.
                let rate = parts
                    .next()
                    .and_then(|r| r.parse::<u32>().ok())
                    .filter(|r| (8_000..=192_000).contains(r))
                    .unwrap_or(8_000);
                Some(Events { pt: *pt, rate })
            })
            .collect();
        let te = events
            .iter()
            .find(|e| e.rate == clock_of(codec))
            .or_else(|| events.first())
            .copied();
        Some((codec, pt, te))
    }
}

/// Our answer: one audio stream at `rtp`, the chosen payload type (and
/// telephone-event), symmetric RTP, 20 ms packets.
pub fn answer(
    rtp: SocketAddr,
    session: u64,
    codec: SipCodec,
    pt: u8,
    te: Option<Events>,
) -> String {
    answer_with(rtp, session, 1, codec, pt, te, Direction::SendRecv)
}

/// [`answer`] with the SDP's `o=` version (one more for each changed
/// answer in a dialog, RFC 3264 §8) and our direction.
pub fn answer_with(
    rtp: SocketAddr,
    session: u64,
    version: u64,
    codec: SipCodec,
    pt: u8,
    te: Option<Events>,
    direction: Direction,
) -> String {
    let ip = rtp.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut pts = pt.to_string();
    let mut attrs = rtpmap(codec, pt);
    if let Some(Events { pt: te, rate }) = te {
        pts.push_str(&format!(" {te}"));
        attrs.push_str(&format!(
            "a=rtpmap:{te} telephone-event/{rate}\r\na=fmtp:{te} 0-15\r\n"
        ));
    }
    format!(
        "v=0\r\no=switchboard {session} {version} IN {family} {ip}\r\ns=switchboard\r\n\
c=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {pts}\r\n{attrs}a=ptime:20\r\n{max}a={dir}\r\n",
        port = rtp.port(),
        dir = direction.as_str(),
        max = maxptime(codec),
    )
}

/// Our offer for an outbound call: one audio stream at `rtp` with every
/// codec of `prefs` (G.711 at its static payload types, Opus at 111,
/// telephone-event at 101 on the 8 kHz clock and, when Opus is offered,
/// at 110 on the 48 kHz one: RFC 4733 §7.1.1 events share their audio's
/// clock, so the answer's codec decides which the far end keeps), in the
/// trunk's order.
pub fn offer(rtp: SocketAddr, session: u64, prefs: &[SipCodec]) -> String {
    let ip = rtp.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut pts = Vec::new();
    let mut attrs = String::new();
    for c in prefs {
        match c {
            SipCodec::Pcmu => {
                pts.push("0");
                attrs.push_str("a=rtpmap:0 PCMU/8000\r\n");
            }
            SipCodec::Pcma => {
                pts.push("8");
                attrs.push_str("a=rtpmap:8 PCMA/8000\r\n");
            }
            SipCodec::Opus => {
                pts.push("111");
                attrs.push_str(&rtpmap(SipCodec::Opus, 111));
            }
            SipCodec::TelephoneEvent => {
                pts.push("101");
                attrs.push_str("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n");
                if prefs.contains(&SipCodec::Opus) {
                    let te = EVENTS_48K_PT;
                    pts.push("110");
                    attrs.push_str(&format!(
                        "a=rtpmap:{te} telephone-event/48000\r\na=fmtp:{te} 0-15\r\n"
                    ));
                }
            }
        }
    }
    format!(
        "v=0\r\no=switchboard {session} {session} IN {family} {ip}\r\ns=switchboard\r\n\
c=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {pts}\r\n{attrs}a=ptime:20\r\n{max}a=sendrecv\r\n",
        port = rtp.port(),
        pts = pts.join(" "),
        max = if prefs.contains(&SipCodec::Opus) { maxptime(SipCodec::Opus) } else { "" },
    )
}

/// The `a=rtpmap` (and for Opus `a=fmtp`) lines of `codec` at `pt`.
/// Opus (RFC 7587 §7) is always named `opus/48000/2`; we ask for mono
/// (`stereo=0`: the engine is mono), say we send mono, take full band
/// and in-band FEC, so a trunk's packets go to the engine as they are.
fn rtpmap(codec: SipCodec, pt: u8) -> String {
    match codec {
        SipCodec::Opus => format!(
            "a=rtpmap:{pt} opus/48000/2\r\n\
a=fmtp:{pt} maxplaybackrate=48000;stereo=0;sprop-stereo=0;useinbandfec=1\r\n"
        ),
        SipCodec::Pcma => format!("a=rtpmap:{pt} PCMA/8000\r\n"),
        _ => format!("a=rtpmap:{pt} PCMU/8000\r\n"),
    }
}

/// `a=maxptime:20` for Opus: the engine decodes packets of at most 20 ms.
fn maxptime(codec: SipCodec) -> &'static str {
    match codec {
        SipCodec::Opus => "a=maxptime:20\r\n",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARESIP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 20140 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

    #[test]
    fn reads_an_offer_and_answers() {
        let o = Offer::parse(BARESIP.as_bytes()).expect("offer");
        assert_eq!(o.rtp, "127.0.0.1:20140".parse().expect("addr"));
        assert_eq!(o.formats[1], (8, "pcma/8000".into()));
        let prefs = [SipCodec::Pcma, SipCodec::Pcmu, SipCodec::TelephoneEvent];
        assert_eq!(
            o.choose(&prefs),
            Some((
                SipCodec::Pcma,
                8,
                Some(Events {
                    pt: 101,
                    rate: 8000
                })
            ))
        );
        assert_eq!(o.choose(&[SipCodec::Pcmu]), Some((SipCodec::Pcmu, 0, None)));
        assert_eq!(o.choose(&[SipCodec::Opus]), None);
        // baresip's Opus offer (RFC 7587): named opus/48000/2, with
        // telephone-event on the 8 kHz clock only.
        let opus = BARESIP.replace("RTP/AVP 0 8 101", "RTP/AVP 96 0 101")
            + "a=rtpmap:96 opus/48000/2\r\na=fmtp:96 stereo=1;sprop-stereo=1\r\n";
        let o = Offer::parse(opus.as_bytes()).expect("offer");
        let prefs = [SipCodec::Opus, SipCodec::Pcmu, SipCodec::TelephoneEvent];
        let te8 = Events {
            pt: 101,
            rate: 8000,
        };
        assert_eq!(
            o.choose(&prefs),
            Some((SipCodec::Opus, 96, Some(te8))),
            "no event format on the audio's clock: the offered one"
        );
        assert_eq!(
            o.choose(&[SipCodec::Pcmu, SipCodec::Opus]),
            Some((SipCodec::Pcmu, 0, None)),
            "the trunk's order decides"
        );
        // RFC 4733 §7.1.1: with both offered, Opus keeps the 48 kHz one
        // and G.711 the 8 kHz one.
        let both = opus.replace("RTP/AVP 96 0 101", "RTP/AVP 96 0 101 97")
            + "a=rtpmap:97 telephone-event/48000\r\na=fmtp:97 0-16\r\n";
        let o = Offer::parse(both.as_bytes()).expect("offer");
        let te48 = Events {
            pt: 97,
            rate: 48000,
        };
        assert_eq!(o.choose(&prefs), Some((SipCodec::Opus, 96, Some(te48))));
        assert_eq!(
            o.choose(&[SipCodec::Pcmu, SipCodec::TelephoneEvent]),
            Some((SipCodec::Pcmu, 0, Some(te8)))
        );
        let a = answer(o.rtp, 5, SipCodec::Opus, 96, Some(te48));
        assert!(
            a.contains("m=audio 20140 RTP/AVP 96 97\r\na=rtpmap:96 opus/48000/2\r\n")
                && a.contains(
                    "a=fmtp:96 maxplaybackrate=48000;stereo=0;sprop-stereo=0;useinbandfec=1\r\n"
                )
                && a.contains("a=rtpmap:97 telephone-event/48000\r\n")
                && !a.contains("/8000")
                && a.contains("a=ptime:20\r\na=maxptime:20\r\n"),
            "{a}"
        );
        let back = Offer::parse(a.as_bytes()).expect("our answer parses");
        assert_eq!(back.choose(&prefs), Some((SipCodec::Opus, 96, Some(te48))));
        // Our offer: both event clocks when Opus is offered; the far end's
        // codec picks its own.
        let ours = offer(o.rtp, 1, &prefs);
        assert!(ours.contains("RTP/AVP 111 0 101 110\r\n"), "{ours}");
        assert!(
            ours.contains("a=rtpmap:101 telephone-event/8000\r\n")
                && ours.contains("a=rtpmap:110 telephone-event/48000\r\n"),
            "{ours}"
        );
        let back = Offer::parse(ours.as_bytes()).expect("our offer parses");
        assert_eq!(
            back.choose(&prefs),
            Some((
                SipCodec::Opus,
                111,
                Some(Events {
                    pt: 110,
                    rate: 48000
                })
            ))
        );
        assert_eq!(
            back.choose(&[SipCodec::Pcmu, SipCodec::TelephoneEvent]),
            Some((SipCodec::Pcmu, 0, Some(te8)))
        );
        let g711 = offer(o.rtp, 1, &[SipCodec::Pcmu, SipCodec::TelephoneEvent]);
        assert!(
            g711.contains("RTP/AVP 0 101\r\n") && !g711.contains("/48000"),
            "{g711}"
        );
        // Opus at another clock is not RFC 7587's.
        let wrong = opus.replace("opus/48000/2", "opus/16000/1");
        let o = Offer::parse(wrong.as_bytes()).expect("offer");
        assert_eq!(o.choose(&[SipCodec::Opus]), None);
        let a = answer(
            "127.0.0.1:30000".parse().expect("addr"),
            5,
            SipCodec::Pcmu,
            0,
            Some(Events {
                pt: 101,
                rate: 8000,
            }),
        );
        let back = Offer::parse(a.as_bytes()).expect("our answer parses");
        assert_eq!(back.rtp.port(), 30000);
        assert_eq!(
            back.formats,
            vec![
                (0, "pcmu/8000".into()),
                (101, "telephone-event/8000".into())
            ]
        );
    }

    #[test]
    fn reads_hold_directions() {
        for (extra, dir) in [
            ("a=sendonly\r\n", Direction::SendOnly),
            ("a=inactive\r\n", Direction::Inactive),
            ("a=recvonly\r\n", Direction::RecvOnly),
            ("", Direction::SendRecv),
        ] {
            let o = Offer::parse(format!("{BARESIP}{extra}").as_bytes()).expect("offer");
            assert_eq!(o.direction, dir);
        }
        let old_hold = BARESIP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        let o = Offer::parse(old_hold.as_bytes()).expect("offer");
        assert_eq!(o.direction, Direction::Inactive);
        assert_eq!(Direction::SendOnly.answer(), Direction::RecvOnly);
        let a = answer_with(o.rtp, 1, 2, SipCodec::Pcmu, 0, None, Direction::RecvOnly);
        assert!(
            a.contains("a=recvonly\r\n") && a.contains("o=switchboard 1 2 "),
            "{a}"
        );
    }

    #[test]
    fn refuses_bad_sdp() {
        for bad in [
            "",
            "hello",
            "v=0\r\nm=audio 1 RTP/AVP 0\r\n",
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n",
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 0 RTP/AVP 0\r\n",
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/SAVP 0\r\n",
            "v=0\r\nc=IN IP4 nope\r\nm=audio 5 RTP/AVP 0\r\n",
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5 RTP/AVP 96\r\n",
        ] {
            assert!(Offer::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
