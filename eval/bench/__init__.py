"""`make bench`: ShopDesk's own cost measured against the bare components, in one run.

Every figure is a ratio or a percentile taken in the same process, on the
same machine and inputs as its baseline; nothing here is a timed test.
"""
