#![no_main]
//! Strict decoding of `Watermark`: no panic, stable round trip.

use libfuzzer_sys::fuzz_target;
use rn::ledger::log::Watermark;

fuzz_target!(|data: &[u8]| rn_fuzz::round_trip::<Watermark>(data));
