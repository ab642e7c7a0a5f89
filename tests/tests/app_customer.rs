//! The caller card's customer details, tested natively (the app itself
//! builds only for wasm): the module's own tests run here.

#[path = "../../app/src/customer.rs"]
#[allow(dead_code)]
mod customer;
