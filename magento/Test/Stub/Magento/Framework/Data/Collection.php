<?php

declare(strict_types=1);

namespace Magento\Framework\Data;

/** A paged list of items with the few collection methods the backfill calls; records the filters. */
class Collection implements \IteratorAggregate
{
    public array $filters = [];
    private int $pageSize = 20;
    private int $page = 1;

    public function __construct(public array $items = [])
    {
    }

    public function addFieldToFilter($field, $condition = null)
    {
        $this->filters[$field] = $condition;
        return $this;
    }

    public function addAttributeToSelect($attribute, $joinType = false)
    {
        return $this;
    }

    public function setOrder($field, $direction = 'DESC')
    {
        return $this;
    }

    public function setPageSize($size)
    {
        $this->pageSize = (int) $size;
        return $this;
    }

    public function setCurPage($page)
    {
        $this->page = (int) $page;
        return $this;
    }

    public function getLastPageNumber()
    {
        return max(1, (int) ceil(count($this->items) / $this->pageSize));
    }

    public function getSize()
    {
        return count($this->items);
    }

    public function clear()
    {
        return $this;
    }

    public function getIterator(): \Iterator
    {
        return new \ArrayIterator(array_slice($this->items, ($this->page - 1) * $this->pageSize, $this->pageSize));
    }
}
