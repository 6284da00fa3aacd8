//! Read models of the warehouse service, built from the `WAREHOUSE` stream.
//!
//! - [`Inventory`]: the `stocks`, `reservations` and `reservation_lines`
//!   tables behind ViewProductStock and ViewReservation.

mod inventory;

pub use inventory::{Inventory, ReservationRow, StockRow};
