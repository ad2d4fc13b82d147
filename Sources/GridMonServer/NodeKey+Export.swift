/// NodeKey lives in GridMonCore (shared with GridMonDetect); users of the server see it here as before.
@_exported import struct GridMonCore.NodeKey
