<?php

declare(strict_types=1);

namespace Magento\Framework;

class DataObject
{
    protected array $data = [];

    public function __construct(array $data = [])
    {
        $this->data = $data;
    }

    public function getData($key = '', $index = null)
    {
        return $key === '' ? $this->data : ($this->data[$key] ?? null);
    }

    public function setData($key, $value = null)
    {
        if (is_array($key)) {
            $this->data = $key;
        } else {
            $this->data[$key] = $value;
        }
        return $this;
    }

    public function __call($method, $args)
    {
        $key = strtolower((string) preg_replace('/(.)([A-Z])/', '$1_$2', substr($method, 3)));
        return match (substr($method, 0, 3)) {
            'get' => $this->getData($key),
            'set' => $this->setData($key, $args[0] ?? null),
            'has' => array_key_exists($key, $this->data),
            default => throw new \BadMethodCallException($method),
        };
    }
}
