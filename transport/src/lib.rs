//! `lockstep-transport` will own the wire codecs (SoupBinTCP 4.0, OUCH 4.2),
//! the gateway servers and the client library (issue 4). It is an empty member
//! of the workspace until then: nothing here pretends to work.
