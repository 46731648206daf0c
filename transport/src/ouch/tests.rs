//! Tests of the OUCH 4.2 codec: round trips, byte strings laid out by hand
//! from the specification's offset tables, and malformed input.

use super::*;
use proptest::prelude::*;

fn tok(s: &str) -> Token {
    Token::left(s).expect("token")
}

fn enter_order() -> EnterOrder {
    EnterOrder {
        token: tok("ORD00000000001"),
        side: Side::Buy,
        shares: 100,
        stock: Stock::left("AAPL").unwrap(),
        price: 1_500_000, // $150.0000
        time_in_force: TIF_MARKET_HOURS,
        firm: Firm::left("LOCK").unwrap(),
        display: Display::AnonymousPriceToComply,
        capacity: Capacity::Agency,
        intermarket_sweep: IntermarketSweep::NotEligible,
        minimum_quantity: 0,
        cross_type: CrossType::NoCross,
        customer_type: CustomerType::PortDefault,
    }
}

fn replace_order() -> ReplaceOrder {
    ReplaceOrder {
        existing_token: tok("ORD00000000001"),
        replacement_token: tok("ORD00000000002"),
        shares: 80,
        price: 1_499_900,
        time_in_force: TIF_IOC,
        display: Display::PostOnly,
        intermarket_sweep: IntermarketSweep::NotEligible,
        minimum_quantity: 80,
    }
}

fn cancel_order() -> CancelOrder {
    CancelOrder {
        token: tok("ORD00000000002"),
        shares: 0,
    }
}

fn accepted() -> Accepted {
    Accepted {
        timestamp: 34_200_000_000_123,
        token: tok("ORD00000000001"),
        side: Side::Sell,
        shares: 100,
        stock: Stock::left("MSFT").unwrap(),
        price: 3_000_000,
        time_in_force: TIF_SYSTEM_HOURS,
        firm: Firm::left("LOCK").unwrap(),
        display: Display::AnonymousPriceToComply,
        order_reference_number: 7,
        capacity: Capacity::Principal,
        intermarket_sweep: IntermarketSweep::NotEligible,
        minimum_quantity: 0,
        cross_type: CrossType::NoCross,
        order_state: OrderState::Live,
        bbo_weight: BboWeight::Unspecified,
    }
}

fn replaced() -> Replaced {
    let a = accepted();
    Replaced {
        timestamp: a.timestamp + 1,
        replacement_token: tok("ORD00000000002"),
        side: a.side,
        shares: 50,
        stock: a.stock,
        price: a.price,
        time_in_force: a.time_in_force,
        firm: a.firm,
        display: a.display,
        order_reference_number: 8,
        capacity: a.capacity,
        intermarket_sweep: a.intermarket_sweep,
        minimum_quantity: 0,
        cross_type: a.cross_type,
        order_state: OrderState::Dead,
        previous_token: a.token,
        bbo_weight: BboWeight::ImprovesNbbo,
    }
}

fn inbound_samples() -> Vec<Inbound> {
    vec![
        Inbound::EnterOrder(enter_order()),
        Inbound::ReplaceOrder(replace_order()),
        Inbound::CancelOrder(cancel_order()),
    ]
}

fn outbound_samples() -> Vec<Outbound> {
    vec![
        Outbound::SystemEvent(SystemEvent {
            timestamp: 1,
            event: EventCode::StartOfDay,
        }),
        Outbound::SystemEvent(SystemEvent {
            timestamp: u64::MAX,
            event: EventCode::EndOfDay,
        }),
        Outbound::Accepted(accepted()),
        Outbound::Replaced(replaced()),
        Outbound::Canceled(Canceled {
            timestamp: 5,
            token: tok("T1"),
            decrement_shares: 40,
            reason: CancelReason::SelfMatchPrevention,
        }),
        Outbound::Executed(Executed {
            timestamp: 6,
            token: tok("T1"),
            executed_shares: 60,
            execution_price: 3_000_000,
            liquidity_flag: LiquidityFlag::Added,
            match_number: 0x0102_0304_0506_0708,
        }),
        Outbound::Rejected(Rejected {
            timestamp: 7,
            token: tok("T2"),
            reason: RejectReason::InvalidPrice,
        }),
    ]
}

// ---------------------------------------------------------------- round trips

#[test]
fn round_trip_every_inbound_message() {
    for m in inbound_samples() {
        let mut v = Vec::new();
        let n = m.encode(&mut v);
        assert_eq!(n, m.encoded_len());
        assert_eq!(v.len(), n);
        assert_eq!(Inbound::decode(&v), Ok(m));
    }
}

#[test]
fn round_trip_every_outbound_message() {
    for m in outbound_samples() {
        let mut v = Vec::new();
        let n = m.encode(&mut v);
        assert_eq!(n, m.encoded_len());
        assert_eq!(Outbound::decode(&v), Ok(m));
    }
}

#[test]
fn round_trip_every_enum_value() {
    for &side in Side::ALL {
        for &display in Display::ALL {
            let m = Inbound::EnterOrder(EnterOrder {
                side,
                display,
                ..enter_order()
            });
            let mut v = Vec::new();
            m.encode(&mut v);
            assert_eq!(Inbound::decode(&v), Ok(m));
        }
    }
    for &reason in CancelReason::ALL {
        let m = Outbound::Canceled(Canceled {
            timestamp: 0,
            token: tok("X"),
            decrement_shares: 1,
            reason,
        });
        let mut v = Vec::new();
        m.encode(&mut v);
        assert_eq!(Outbound::decode(&v), Ok(m));
    }
    for &reason in RejectReason::ALL {
        let m = Outbound::Rejected(Rejected {
            timestamp: 0,
            token: tok("X"),
            reason,
        });
        let mut v = Vec::new();
        m.encode(&mut v);
        assert_eq!(Outbound::decode(&v), Ok(m));
    }
    for &flag in LiquidityFlag::ALL {
        assert_eq!(LiquidityFlag::from_byte(flag.as_byte()), Some(flag));
    }
    for &w in BboWeight::ALL {
        assert_eq!(BboWeight::from_byte(w.as_byte()), Some(w));
    }
}

#[test]
fn encode_into_slice_matches_vec_and_checks_size() {
    let m = Outbound::Accepted(accepted());
    let mut v = Vec::new();
    m.encode(&mut v);
    let mut buf = [0u8; 100];
    let n = m.encode_into(&mut buf).unwrap();
    assert_eq!(&buf[..n], &v[..]);
    let mut small = [0u8; 65];
    assert_eq!(
        m.encode_into(&mut small),
        Err(BufferTooSmall {
            needed: 66,
            available: 65
        })
    );
}

// ------------------------------------------------ byte strings from the spec

fn push_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn push_u64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_be_bytes());
}

// Enter Order, OUCH 4.2 section 2.1 (offset length field):
//  0 1 type 'O' | 1 14 order token | 15 1 buy/sell | 16 4 shares |
// 20 8 stock | 28 4 price | 32 4 time in force | 36 4 firm | 40 1 display |
// 41 1 capacity | 42 1 ISE | 43 4 minimum quantity | 47 1 cross type |
// 48 1 customer type  => 49 bytes.
#[test]
fn enter_order_matches_spec_layout() {
    let mut w = vec![b'O'];
    w.extend_from_slice(b"ORD00000000001");
    w.push(b'B');
    w.extend_from_slice(&[0x00, 0x00, 0x00, 0x64]); // 100 shares
    w.extend_from_slice(b"AAPL    ");
    w.extend_from_slice(&[0x00, 0x16, 0xE3, 0x60]); // 1_500_000 = $150.0000
    w.extend_from_slice(&[0x00, 0x01, 0x86, 0x9E]); // 99998
    w.extend_from_slice(b"LOCK");
    w.extend_from_slice(b"YAN");
    w.extend_from_slice(&[0, 0, 0, 0]);
    w.extend_from_slice(b"N ");
    assert_eq!(w.len(), 49);
    assert_eq!(w[47], b'N');
    let m = Inbound::EnterOrder(enter_order());
    let mut v = Vec::new();
    m.encode(&mut v);
    assert_eq!(v, w);
    assert_eq!(Inbound::decode(&w), Ok(m));
}

// Replace Order: 0 'U' | 1 14 existing token | 15 14 replacement token |
// 29 4 shares | 33 4 price | 37 4 TIF | 41 1 display | 42 1 ISE |
// 43 4 minimum quantity  => 47 bytes.
#[test]
fn replace_order_matches_spec_layout() {
    let mut w = vec![b'U'];
    w.extend_from_slice(b"ORD00000000001ORD00000000002");
    push_u32(&mut w, 80);
    push_u32(&mut w, 1_499_900);
    push_u32(&mut w, 0);
    w.extend_from_slice(b"PN");
    push_u32(&mut w, 80);
    assert_eq!(w.len(), 47);
    assert_eq!(&w[29..33], &[0, 0, 0, 80]);
    let m = Inbound::ReplaceOrder(replace_order());
    let mut v = Vec::new();
    m.encode(&mut v);
    assert_eq!(v, w);
    assert_eq!(Inbound::decode(&w), Ok(m));
}

// Cancel Order: 0 'X' | 1 14 order token | 15 4 shares  => 19 bytes.
#[test]
fn cancel_order_matches_spec_layout() {
    let w = b"XORD00000000002\x00\x00\x00\x00";
    assert_eq!(w.len(), 19);
    let m = Inbound::CancelOrder(cancel_order());
    let mut v = Vec::new();
    m.encode(&mut v);
    assert_eq!(v, w);
    assert_eq!(Inbound::decode(w), Ok(m));
}

// System Event: 0 'S' | 1 8 timestamp | 9 1 event code  => 10 bytes.
#[test]
fn system_event_matches_spec_layout() {
    let w = [b'S', 0, 0, 0, 0, 0, 0, 0, 1, b'S'];
    let m = Outbound::SystemEvent(SystemEvent {
        timestamp: 1,
        event: EventCode::StartOfDay,
    });
    let mut v = Vec::new();
    m.encode(&mut v);
    assert_eq!(v, w);
    assert_eq!(Outbound::decode(&w), Ok(m));
}

// Accepted: 0 'A' | 1 8 timestamp | 9 14 token | 23 1 buy/sell | 24 4 shares |
// 28 8 stock | 36 4 price | 40 4 TIF | 44 4 firm | 48 1 display |
// 49 8 order reference number | 57 1 capacity | 58 1 ISE |
// 59 4 minimum quantity | 63 1 cross type | 64 1 order state |
// 65 1 BBO weight indicator  => 66 bytes.
#[test]
fn accepted_matches_spec_layout() {
    let mut w = vec![b'A'];
    push_u64(&mut w, 34_200_000_000_123);
    w.extend_from_slice(b"ORD00000000001");
    w.push(b'S');
    push_u32(&mut w, 100);
    w.extend_from_slice(b"MSFT    ");
    push_u32(&mut w, 3_000_000);
    push_u32(&mut w, 99_999);
    w.extend_from_slice(b"LOCK");
    w.push(b'Y');
    push_u64(&mut w, 7);
    w.extend_from_slice(b"PN");
    push_u32(&mut w, 0);
    w.extend_from_slice(b"NL ");
    assert_eq!(w.len(), 66);
    assert_eq!(w[64], b'L');
    assert_eq!(&w[49..57], &[0, 0, 0, 0, 0, 0, 0, 7]);
    let m = Outbound::Accepted(accepted());
    let mut v = Vec::new();
    m.encode(&mut v);
    assert_eq!(v, w);
    assert_eq!(Outbound::decode(&w), Ok(m));
}

// Replaced: as Accepted up to 64 (order state), then 65 14 previous order
// token | 79 1 BBO weight indicator  => 80 bytes.
#[test]
fn replaced_matches_spec_layout() {
    let mut w = vec![b'U'];
    push_u64(&mut w, 34_200_000_000_124);
    w.extend_from_slice(b"ORD00000000002");
    w.push(b'S');
    push_u32(&mut w, 50);
    w.extend_from_slice(b"MSFT    ");
    push_u32(&mut w, 3_000_000);
    push_u32(&mut w, 99_999);
    w.extend_from_slice(b"LOCK");
    w.push(b'Y');
    push_u64(&mut w, 8);
    w.extend_from_slice(b"PN");
    push_u32(&mut w, 0);
    w.extend_from_slice(b"ND");
    w.extend_from_slice(b"ORD00000000001");
    w.push(b'N');
    assert_eq!(w.len(), 80);
    assert_eq!(&w[65..79], b"ORD00000000001");
    let m = Outbound::Replaced(replaced());
    let mut v = Vec::new();
    m.encode(&mut v);
    assert_eq!(v, w);
    assert_eq!(Outbound::decode(&w), Ok(m));
}

// Canceled: 0 'C' | 1 8 timestamp | 9 14 token | 23 4 decrement shares |
// 27 1 reason  => 28 bytes.
#[test]
fn canceled_matches_spec_layout() {
    let mut w = vec![b'C'];
    push_u64(&mut w, 5);
    w.extend_from_slice(b"T1            ");
    push_u32(&mut w, 40);
    w.push(b'Q');
    assert_eq!(w.len(), 28);
    let m = outbound_samples()[4];
    let mut v = Vec::new();
    m.encode(&mut v);
    assert_eq!(v, w);
    assert_eq!(Outbound::decode(&w), Ok(m));
}

// Executed: 0 'E' | 1 8 timestamp | 9 14 token | 23 4 executed shares |
// 27 4 execution price | 31 1 liquidity flag | 32 8 match number  => 40 bytes.
#[test]
fn executed_matches_spec_layout() {
    let mut w = vec![b'E'];
    push_u64(&mut w, 6);
    w.extend_from_slice(b"T1            ");
    push_u32(&mut w, 60);
    push_u32(&mut w, 3_000_000);
    w.push(b'A');
    w.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(w.len(), 40);
    let m = outbound_samples()[5];
    let mut v = Vec::new();
    m.encode(&mut v);
    assert_eq!(v, w);
    assert_eq!(Outbound::decode(&w), Ok(m));
}

// Rejected: 0 'J' | 1 8 timestamp | 9 14 token | 23 1 reason  => 24 bytes.
#[test]
fn rejected_matches_spec_layout() {
    let mut w = vec![b'J'];
    push_u64(&mut w, 7);
    w.extend_from_slice(b"T2            ");
    w.push(b'X');
    assert_eq!(w.len(), 24);
    let m = outbound_samples()[6];
    let mut v = Vec::new();
    m.encode(&mut v);
    assert_eq!(v, w);
    assert_eq!(Outbound::decode(&w), Ok(m));
}

// ---------------------------------------------------------- malformed input

#[test]
fn empty_message_is_an_error() {
    assert_eq!(Inbound::decode(&[]), Err(DecodeError::Empty));
    assert_eq!(Outbound::decode(&[]), Err(DecodeError::Empty));
}

#[test]
fn unknown_message_types_are_errors() {
    // 'M' (Modify) and 'A' are not client messages Lockstep accepts; 'O' is not
    // a server message.
    for t in [b'M', b'A', b'Z', 0, 0xFF] {
        assert_eq!(Inbound::decode(&[t; 49]), Err(DecodeError::UnknownType(t)));
    }
    for t in [b'O', b'X', b'D', b'B'] {
        assert_eq!(Outbound::decode(&[t; 40]), Err(DecodeError::UnknownType(t)));
    }
}

#[test]
fn truncated_and_overlong_messages_are_errors() {
    for m in inbound_samples() {
        let mut v = Vec::new();
        m.encode(&mut v);
        for cut in 1..v.len() {
            assert!(matches!(
                Inbound::decode(&v[..cut]),
                Err(DecodeError::BadLength { .. })
            ));
        }
        v.push(b' ');
        assert!(matches!(
            Inbound::decode(&v),
            Err(DecodeError::BadLength { .. })
        ));
    }
    for m in outbound_samples() {
        let mut v = Vec::new();
        m.encode(&mut v);
        for cut in 1..v.len() {
            assert!(matches!(
                Outbound::decode(&v[..cut]),
                Err(DecodeError::BadLength { .. })
            ));
        }
    }
    // OUCH 4.0's 48-byte Enter Order (no customer type) is not 4.2.
    assert_eq!(
        Inbound::decode(&[b'O'; 48]),
        Err(DecodeError::BadLength {
            message_type: b'O',
            len: 48,
            expected: 49
        })
    );
}

/// Sets byte `at` of an encoded message and expects a BadEnum naming `field`.
fn expect_bad_enum_in(encoded: &[u8], at: usize, value: u8, field: &'static str, inbound: bool) {
    let mut v = encoded.to_vec();
    v[at] = value;
    let err = if inbound {
        Inbound::decode(&v).unwrap_err()
    } else {
        Outbound::decode(&v).unwrap_err()
    };
    assert_eq!(err, DecodeError::BadEnum { field, value }, "offset {at}");
    assert_eq!(err.field(), Some(field));
}

#[test]
fn bad_enum_values_in_enter_order_name_the_field() {
    let mut v = Vec::new();
    Inbound::EnterOrder(enter_order()).encode(&mut v);
    expect_bad_enum_in(&v, 15, b'X', "buy/sell indicator", true);
    expect_bad_enum_in(&v, 40, b'Z', "display", true);
    expect_bad_enum_in(&v, 41, b'Z', "capacity", true);
    expect_bad_enum_in(&v, 42, b'Z', "intermarket sweep eligibility", true);
    expect_bad_enum_in(&v, 47, b'Z', "cross type", true);
    expect_bad_enum_in(&v, 48, b'Z', "customer type", true);
}

#[test]
fn bad_enum_values_in_replace_order_name_the_field() {
    let mut v = Vec::new();
    Inbound::ReplaceOrder(replace_order()).encode(&mut v);
    expect_bad_enum_in(&v, 41, 0, "display", true);
    expect_bad_enum_in(&v, 42, b'y', "intermarket sweep eligibility", true);
}

#[test]
fn bad_enum_values_in_outbound_messages_name_the_field() {
    let s = outbound_samples();
    let enc = |i: usize| {
        let mut v = Vec::new();
        s[i].encode(&mut v);
        v
    };
    expect_bad_enum_in(&enc(0), 9, b'X', "event code", false);
    let a = enc(2);
    expect_bad_enum_in(&a, 23, b'Q', "buy/sell indicator", false);
    expect_bad_enum_in(&a, 64, b'X', "order state", false);
    expect_bad_enum_in(&a, 65, b'9', "BBO weight indicator", false);
    expect_bad_enum_in(&enc(3), 64, b'l', "order state", false);
    expect_bad_enum_in(&enc(4), 27, b'A', "cancel reason", false);
    expect_bad_enum_in(&enc(5), 31, b'Z', "liquidity flag", false);
    expect_bad_enum_in(&enc(6), 23, b'!', "reject reason", false);
}

#[test]
fn non_ascii_alpha_fields_are_errors() {
    let mut v = Vec::new();
    Inbound::EnterOrder(enter_order()).encode(&mut v);
    let mut bad = v.clone();
    bad[1] = 0x00;
    assert_eq!(
        Inbound::decode(&bad),
        Err(DecodeError::BadAlpha {
            field: "order token"
        })
    );
    let mut bad = v.clone();
    bad[20] = 0xC3;
    assert_eq!(
        Inbound::decode(&bad),
        Err(DecodeError::BadAlpha { field: "stock" })
    );
    let mut bad = v;
    bad[36] = b'\n';
    assert_eq!(
        Inbound::decode(&bad),
        Err(DecodeError::BadAlpha { field: "firm" })
    );
}

#[test]
fn alpha_fields_pad_left_justified() {
    assert_eq!(Stock::left("AMZN").unwrap().0, *b"AMZN    ");
    assert_eq!(Stock::left("AMZN").unwrap().trimmed(), b"AMZN");
    assert!(Stock::left("TOOLONGSYM").is_none());
    assert!(Token::left("caf\u{e9}").is_none());
}

// ----------------------------------------------------------------- proptests

proptest! {
    #[test]
    fn random_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..100)) {
        let _ = Inbound::decode(&buf);
        let _ = Outbound::decode(&buf);
    }

    #[test]
    fn random_bodies_of_valid_lengths_never_panic(
        kind in prop::sample::select(vec![b'O', b'U', b'X', b'S', b'A', b'C', b'E', b'J']),
        body in proptest::collection::vec(any::<u8>(), 80),
    ) {
        let len = match kind {
            b'O' => 49, b'U' => 47, b'X' => 19, b'S' => 10,
            b'A' => 66, b'C' => 28, b'E' => 40, _ => 24,
        };
        let mut m = body[..len].to_vec();
        m[0] = kind;
        if let Ok(d) = Inbound::decode(&m) {
            let mut v = Vec::new();
            d.encode(&mut v);
            prop_assert_eq!(v, m.clone());
        }
        if let Ok(d) = Outbound::decode(&m) {
            let mut v = Vec::new();
            d.encode(&mut v);
            prop_assert_eq!(v, m);
        }
    }

    #[test]
    fn executed_round_trips(
        ts in any::<u64>(), shares in any::<u32>(), price in any::<u32>(),
        mn in any::<u64>(), t in "[ -~]{0,14}",
    ) {
        let m = Outbound::Executed(Executed {
            timestamp: ts,
            token: Token::left(&t).unwrap(),
            executed_shares: shares,
            execution_price: price,
            liquidity_flag: LiquidityFlag::Removed,
            match_number: mn,
        });
        let mut v = Vec::new();
        m.encode(&mut v);
        prop_assert_eq!(Outbound::decode(&v), Ok(m));
    }

    /// A SoupBinTCP stream of random bytes fed through both layers.
    #[test]
    fn random_stream_through_both_layers_never_panics(
        buf in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut rest = &buf[..];
        while let Ok(Some((p, n))) = crate::soupbintcp::decode(rest) {
            prop_assert!(n <= rest.len());
            match p {
                crate::soupbintcp::Packet::UnsequencedData(d) => { let _ = Inbound::decode(d); }
                crate::soupbintcp::Packet::SequencedData(d) => { let _ = Outbound::decode(d); }
                _ => {}
            }
            rest = &rest[n..];
        }
    }
}
