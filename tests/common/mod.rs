pub mod capi;
pub mod pg;
pub mod typed;
