//! End-to-end tests of the place-order saga: the five services it spans
//! (product, warehouse, order, payment, shipping), each started exactly as
//! its binary starts it, against one nats-server and one PostgreSQL
//! database. The tests live in `tests/it`; this library is empty.
