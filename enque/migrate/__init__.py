"""Migration from the old Enque (`enque migrate legacy`)."""
