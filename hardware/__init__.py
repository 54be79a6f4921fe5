# SPDX-License-Identifier: MIT
"""The window's status agent: LED, button, and the probes behind them (on the device)."""
