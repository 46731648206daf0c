//! The OUCH → engine mapping of `docs/protocol.md`, row by row.

use super::*;
use crate::ouch::{CrossType, EnterOrder};

fn adapter() -> OuchAdapter {
    OuchAdapter::new(vec![
        (Stock::left("AMZN").unwrap(), InstrumentId(0)),
        (Stock::left("AAPL").unwrap(), InstrumentId(1)),
    ])
}

fn context() -> SessionContext {
    SessionContext {
        session: SessionId(3),
        account: AccountId(7),
        firm: ouch::Firm::left("FRM1").unwrap(),
    }
}

fn order() -> EnterOrder {
    EnterOrder {
        token: ouch::Token::left("T1").unwrap(),
        side: ouch::Side::Buy,
        shares: 100,
        stock: Stock::left("AAPL").unwrap(),
        price: 1_500_000,
        time_in_force: TIF_MARKET_HOURS,
        firm: ouch::Firm::BLANK,
        display: Display::AnonymousPriceToComply,
        capacity: Capacity::Principal,
        intermarket_sweep: IntermarketSweep::NotEligible,
        minimum_quantity: 0,
        cross_type: CrossType::NoCross,
        customer_type: CustomerType::PortDefault,
    }
}

fn enter(order: EnterOrder) -> Result<NewOrder, RejectReason> {
    adapter().enter(&context(), &order)
}

#[test]
fn a_day_order_is_a_gtc_limit_of_the_session_and_account() {
    let new_order = enter(order()).unwrap();
    assert_eq!(new_order.session, SessionId(3));
    assert_eq!(new_order.account, AccountId(7));
    assert_eq!(new_order.instrument, InstrumentId(1));
    assert_eq!(new_order.side, Side::Buy);
    assert_eq!(new_order.order_type, OrderType::Limit);
    assert_eq!(new_order.time_in_force, TimeInForce::Gtc);
    assert_eq!(new_order.price, 1_500_000);
    assert_eq!(new_order.qty, 100);
    assert!(!new_order.post_only);
    assert_eq!(new_order.token.to_bytes(), *b"T1            ");
}

#[test]
fn time_in_force_zero_is_ioc_and_minimum_quantity_equal_to_shares_makes_it_fok() {
    let ioc = enter(EnterOrder {
        time_in_force: TIF_IOC,
        ..order()
    })
    .unwrap();
    assert_eq!(ioc.time_in_force, TimeInForce::Ioc);
    let fok = enter(EnterOrder {
        time_in_force: TIF_IOC,
        minimum_quantity: 100,
        ..order()
    })
    .unwrap();
    assert_eq!(fok.time_in_force, TimeInForce::Fok);
}

#[test]
fn the_market_price_makes_a_market_order_only_with_time_in_force_zero() {
    let market = enter(EnterOrder {
        price: MARKET_PRICE,
        time_in_force: TIF_IOC,
        ..order()
    })
    .unwrap();
    assert_eq!((market.order_type, market.price), (OrderType::Market, 0));
    assert_eq!(
        enter(EnterOrder {
            price: MARKET_PRICE,
            ..order()
        }),
        Err(RejectReason::PriceOutsideBand)
    );
}

#[test]
fn display_p_is_post_only_and_unsupported_displays_are_rejected() {
    let post_only = enter(EnterOrder {
        display: Display::PostOnly,
        ..order()
    })
    .unwrap();
    assert!(post_only.post_only);
    assert_eq!(
        enter(EnterOrder {
            display: Display::MidpointPeg,
            ..order()
        }),
        Err(RejectReason::InvalidDisplay)
    );
}

#[test]
fn short_sales_are_sells() {
    for side in [ouch::Side::SellShort, ouch::Side::SellShortExempt] {
        assert_eq!(
            enter(EnterOrder { side, ..order() }).unwrap().side,
            Side::Sell
        );
    }
}

#[test]
fn each_unsupported_field_value_has_its_reject_reason() {
    let cases = [
        (
            EnterOrder {
                stock: Stock::left("MSFT").unwrap(),
                ..order()
            },
            RejectReason::UnknownInstrument,
        ),
        (
            EnterOrder {
                time_in_force: 30,
                ..order()
            },
            RejectReason::InvalidTimeInForce,
        ),
        (
            EnterOrder {
                minimum_quantity: 10,
                ..order()
            },
            RejectReason::InvalidMinimumQty,
        ),
        (
            EnterOrder {
                cross_type: CrossType::Opening,
                ..order()
            },
            RejectReason::InvalidCrossType,
        ),
        (
            EnterOrder {
                firm: ouch::Firm::left("XXXX").unwrap(),
                ..order()
            },
            RejectReason::InvalidFirm,
        ),
    ];
    for (order, reason) in cases {
        assert_eq!(enter(order), Err(reason), "{order:?}");
    }
}

#[test]
fn the_echo_fields_survive_the_client_tag() {
    for &side in &SIDES {
        for &display in &DISPLAYS {
            for &capacity in &CAPACITIES {
                for intermarket_sweep in [IntermarketSweep::Eligible, IntermarketSweep::NotEligible]
                {
                    for &customer_type in &CUSTOMER_TYPES {
                        for &time_in_force in &TIMES_IN_FORCE {
                            let echo = EchoFields {
                                side,
                                display,
                                capacity,
                                intermarket_sweep,
                                customer_type,
                                time_in_force,
                            };
                            assert_eq!(EchoFields::unpack(echo.pack()), echo);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_replace_must_keep_a_day_order_without_minimum_quantity() {
    let replace = ouch::ReplaceOrder {
        existing_token: ouch::Token::left("T1").unwrap(),
        replacement_token: ouch::Token::left("T2").unwrap(),
        shares: 50,
        price: 1_400_000,
        time_in_force: TIF_SYSTEM_HOURS,
        display: Display::AnonymousPriceToComply,
        intermarket_sweep: IntermarketSweep::NotEligible,
        minimum_quantity: 0,
    };
    let command = OuchAdapter::replace(SessionId(3), &replace).unwrap();
    assert_eq!((command.price, command.qty), (1_400_000, 50));
    let ioc = ouch::ReplaceOrder {
        time_in_force: TIF_IOC,
        ..replace
    };
    assert_eq!(
        OuchAdapter::replace(SessionId(3), &ioc),
        Err(RejectReason::InvalidTimeInForce)
    );
    let minimum = ouch::ReplaceOrder {
        minimum_quantity: 5,
        ..replace
    };
    assert_eq!(
        OuchAdapter::replace(SessionId(3), &minimum),
        Err(RejectReason::InvalidMinimumQty)
    );
}

#[test]
fn a_cancel_with_shares_is_a_reduction_to_that_size() {
    let mut payload = Vec::new();
    Inbound::CancelOrder(ouch::CancelOrder {
        token: ouch::Token::left("T1").unwrap(),
        shares: 40,
    })
    .encode(&mut payload);
    let Translation::Command(Command::Cancel(cancel)) = adapter().translate(&context(), &payload)
    else {
        panic!("a cancel translates to a cancel");
    };
    assert_eq!(cancel.qty_after, 40);
}

#[test]
fn a_bad_enum_byte_becomes_a_sequenced_reject_and_a_bad_length_is_malformed() {
    let mut payload = Vec::new();
    Inbound::EnterOrder(order()).encode(&mut payload);
    let mut bad_capacity = payload.clone();
    bad_capacity[41] = b'?';
    assert!(matches!(
        adapter().translate(&context(), &bad_capacity),
        Translation::Command(Command::Reject {
            reason: RejectReason::InvalidCapacity,
            command: CommandKind::New,
            ..
        })
    ));
    assert!(matches!(
        adapter().translate(&context(), &payload[..20]),
        Translation::Malformed(_)
    ));
    assert!(matches!(
        adapter().translate(&context(), b"Q"),
        Translation::Malformed(_)
    ));
}
