"""liquidbench: benchmark liquid neural networks (LTC, CfC) against LSTM and GRU."""

__version__ = "0.1.0"
