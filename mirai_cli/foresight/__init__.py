"""foresight"""
