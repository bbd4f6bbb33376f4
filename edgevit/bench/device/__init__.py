"""Drivers that run edgevit's benchmark harnesses on phones (Android over adb) and bring the results back."""
