#![no_main]
//! Strict decoding of `SignedGenesis`: no panic, stable round trip.

use libfuzzer_sys::fuzz_target;
use rn::ledger::SignedGenesis;

fuzz_target!(|data: &[u8]| rn_fuzz::round_trip::<SignedGenesis>(data));
