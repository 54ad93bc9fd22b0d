"""Every record the sheets are written from: plain numpy, pandas and Python values, no torch.

The records modules fill these from torch (float64 replays, the trained model); the sheets
modules read them. One module per workbook family; constants the sheets need live beside them.
"""
