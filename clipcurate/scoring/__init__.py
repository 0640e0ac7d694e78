"""clipcurate.scoring"""
