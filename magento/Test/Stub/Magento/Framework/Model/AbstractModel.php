<?php

declare(strict_types=1);

namespace Magento\Framework\Model;

use Magento\Framework\DataObject;

class AbstractModel extends DataObject
{
    protected string $idFieldName = 'entity_id';
    private ?array $origData = null;
    private bool $isNew = false;

    public function getId()
    {
        return $this->getData($this->idFieldName);
    }

    public function setId($value)
    {
        return $this->setData($this->idFieldName, $value);
    }

    public function getOrigData($key = null)
    {
        return $key === null ? $this->origData : ($this->origData[$key] ?? null);
    }

    public function setOrigData($key = null, $data = null)
    {
        if ($key === null) {
            $this->origData = $this->data;
        } else {
            $this->origData[$key] = $data;
        }
        return $this;
    }

    public function isObjectNew($flag = null)
    {
        if ($flag !== null) {
            $this->isNew = (bool) $flag;
        }
        return $this->isNew;
    }
}
