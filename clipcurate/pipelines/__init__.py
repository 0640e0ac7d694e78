"""clipcurate.pipelines"""
