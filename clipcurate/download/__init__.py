"""clipcurate.download"""
