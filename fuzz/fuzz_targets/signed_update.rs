#![no_main]
//! Strict decoding of `SignedUpdate`: no panic, stable round trip.

use libfuzzer_sys::fuzz_target;
use rn::ledger::SignedUpdate;

fuzz_target!(|data: &[u8]| rn_fuzz::round_trip::<SignedUpdate>(data));
