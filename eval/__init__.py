"""Offline evaluation: golden sets → runs → metrics → reports."""
