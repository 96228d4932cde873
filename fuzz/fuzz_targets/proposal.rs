#![no_main]
//! Strict decoding of `Proposal`: no panic, stable round trip.

use libfuzzer_sys::fuzz_target;
use rn::ledger::Proposal;

fuzz_target!(|data: &[u8]| rn_fuzz::round_trip::<Proposal>(data));
