pub mod capi;
pub mod pg;
